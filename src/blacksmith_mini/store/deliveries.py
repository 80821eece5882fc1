"""Webhook deliveries (persisted before they are acknowledged) and the operators' control state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blacksmith_mini.store import tables
from blacksmith_mini.store.lease import FencedWrites


class DeliveryStore(FencedWrites):
    """Mixed into ``repository.Store``: the same sessions."""

    _sessions: async_sessionmaker[AsyncSession]

    # --- webhook deliveries ----------------------------------------------------------------

    async def record_delivery(
        self, *, delivery_id: str, event: str, action: str | None, payload: str, at: float
    ) -> bool:
        """Persist a delivery before it is acknowledged; False if its id was seen already."""
        try:
            async with self._write() as session:
                session.add(
                    tables.WebhookDeliveryRow(
                        delivery_id=delivery_id,
                        event=event,
                        action=action,
                        received_at=at,
                        payload=payload,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def pending_deliveries(self, *, limit: int = 500) -> list[tuple[str, str, str]]:
        """Deliveries received but not processed yet: (id, event, payload), oldest first."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    tables.WebhookDeliveryRow.delivery_id,
                    tables.WebhookDeliveryRow.event,
                    tables.WebhookDeliveryRow.payload,
                )
                .where(tables.WebhookDeliveryRow.processed_at.is_(None))
                .order_by(tables.WebhookDeliveryRow.received_at)
                .limit(limit)
            )
            return [(row[0], row[1], row[2]) for row in rows.all()]

    async def mark_processed(self, delivery_ids: Sequence[str], *, at: float) -> None:
        if not delivery_ids:
            return
        async with self._write() as session:
            await session.execute(
                update(tables.WebhookDeliveryRow)
                .where(tables.WebhookDeliveryRow.delivery_id.in_(list(delivery_ids)))
                .values(processed_at=at)
            )

    async def known_deliveries(self, delivery_ids: Sequence[str]) -> set[str]:
        async with self._sessions() as session:
            found = await session.scalars(
                select(tables.WebhookDeliveryRow.delivery_id).where(
                    tables.WebhookDeliveryRow.delivery_id.in_(list(delivery_ids))
                )
            )
            return set(found)

    async def last_delivery_at(self) -> float | None:
        async with self._sessions() as session:
            value = await session.scalar(select(func.max(tables.WebhookDeliveryRow.received_at)))
            return float(value) if value is not None else None

    # --- operator control state ------------------------------------------------------------

    async def control_state(self) -> dict[str, dict[str, Any]]:
        async with self._sessions() as session:
            rows = await session.scalars(select(tables.ControlStateRow))
            return {row.key: dict(row.value) for row in rows}

    async def set_control_state(self, key: str, value: dict[str, Any], *, at: float) -> None:
        async with self._write() as session:
            row = await session.get(tables.ControlStateRow, key)
            if row is None:
                session.add(tables.ControlStateRow(key=key, value=value, updated_at=at))
            else:
                row.value, row.updated_at = value, at
