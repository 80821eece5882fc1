"""Metric samples and retention: roll-ups and pruning keep the database bounded."""

from __future__ import annotations

import dataclasses

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blacksmith_mini.store import tables
from blacksmith_mini.store.lease import FencedWrites
from blacksmith_mini.store.records import Sample


class SampleStore(FencedWrites):
    """Mixed into ``repository.Store``: the same sessions."""

    _sessions: async_sessionmaker[AsyncSession]

    # --- retention ---------------------------------------------------------------------------

    async def prune(self, *, now: float, events_days: float = 30.0) -> dict[str, int]:
        """Roll metric samples up and drop old ones and old events, so the database stays
        bounded: raw (60 s) samples for 2 days, 15-minute rollups for 14 days, 3-hour
        rollups for 90 days; events for ``events_days``."""
        removed = {"events": 0, "samples": 0}
        for older_than, step in ((2 * 86400, 900), (14 * 86400, 10800)):
            removed["samples"] += await self._roll_up(before=now - older_than, step=step)
        async with self._write() as session:
            result = await session.execute(
                delete(tables.SampleRow).where(tables.SampleRow.at < now - 90 * 86400)
            )
            removed["samples"] += getattr(result, "rowcount", 0) or 0
            result = await session.execute(
                delete(tables.EventRow).where(tables.EventRow.at < now - events_days * 86400)
            )
            removed["events"] += getattr(result, "rowcount", 0) or 0
        return removed

    async def _roll_up(self, *, before: float, step: int) -> int:
        """Replace samples older than ``before`` with finer steps than ``step`` by one sample
        per ``step``-second bucket (means of gauges, sums of counts, median p50, max p95)."""
        async with self._write() as session:
            rows = list(
                await session.scalars(
                    select(tables.SampleRow).where(
                        tables.SampleRow.at < before, tables.SampleRow.step_seconds < step
                    )
                )
            )
            if not rows:
                return 0
            buckets: dict[int, list[tables.SampleRow]] = {}
            for row in rows:
                buckets.setdefault(int(row.at // step), []).append(row)
            for index, group in buckets.items():
                p50s = sorted(
                    r.queue_to_start_p50 for r in group if r.queue_to_start_p50 is not None
                )
                p95s = [r.queue_to_start_p95 for r in group if r.queue_to_start_p95 is not None]
                session.add(
                    tables.SampleRow(
                        at=float(index * step),
                        step_seconds=step,
                        active_vms=sum(r.active_vms for r in group) / len(group),
                        queued_jobs=sum(r.queued_jobs for r in group) / len(group),
                        spawns=sum(r.spawns for r in group),
                        deaths=sum(r.deaths for r in group),
                        queue_to_start_p50=p50s[len(p50s) // 2] if p50s else None,
                        queue_to_start_p95=max(p95s) if p95s else None,
                    )
                )
            await session.execute(
                delete(tables.SampleRow).where(tables.SampleRow.id.in_([r.id for r in rows]))
            )
            return len(rows) - len(buckets)

    # --- samples ---------------------------------------------------------------------------

    async def add_sample(self, sample: Sample) -> None:
        async with self._write() as session:
            session.add(tables.SampleRow(**dataclasses.asdict(sample)))

    async def samples(self, *, since: float) -> list[Sample]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(tables.SampleRow)
                .where(tables.SampleRow.at >= since)
                .order_by(tables.SampleRow.at)
            )
            return [
                Sample(
                    at=row.at,
                    step_seconds=row.step_seconds,
                    active_vms=row.active_vms,
                    queued_jobs=row.queued_jobs,
                    spawns=row.spawns,
                    deaths=row.deaths,
                    queue_to_start_p50=row.queue_to_start_p50,
                    queue_to_start_p95=row.queue_to_start_p95,
                )
                for row in rows
            ]
