"""Hosts and their agents' commands: the rows behind the multi-host mode.

A host's token is made once by ``add_host`` and stored only as its SHA-256, so the database
never holds a usable credential; ``revoke_host`` ends it. Every agent ``hello`` bumps the
host's ``session``: a message carrying an older session comes from a replaced agent process
and is refused (the host's fencing token). Commands are persisted before they are sent, keyed
by an idempotency key (``kind:vm_id:attempt``), and stay pending until the agent acknowledges
them; a start's JIT config (a credential) is wiped from the row when it is acknowledged.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blacksmith_mini.domain import model
from blacksmith_mini.domain.hostbook import HostCommand, HostRecord
from blacksmith_mini.store import tables
from blacksmith_mini.store.lease import FencedWrites

TOKEN_PREFIX = "bmh_"  # noqa: S105 - a prefix, not a secret
ADMIN_STATES = ("up", "cordoned", "draining")
SECRET_PAYLOAD_KEYS = ("jit_config",)


class HostExists(Exception):
    """``add_host`` was given a name that is taken."""


class StaleSession(Exception):
    """A message from an agent session that a newer ``hello`` replaced."""


MATERIAL = ("alive", "runner_online", "job_started", "job_finished", "exit_code", "kept_until")


def material_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether a host's observations changed in what the planner reads (a VM came or went,
    or one of its ``MATERIAL`` facts moved); clocks and details do not count."""
    if old.keys() != new.keys():
        return True
    for key, seen in new.items():
        before = old[key]
        if any(before.get(name) != seen.get(name) for name in MATERIAL):
            return True
    return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _host(row: tables.HostRow) -> HostRecord:
    return HostRecord(
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        admin_state=row.admin_state,
        session=row.session,
        report=dict(row.report or {}),
        observations=dict(row.observations or {}),
        last_seen=row.last_seen,
        down_since=row.down_since,
        down_reason=row.down_reason,
    )


def _command(row: tables.HostCommandRow) -> HostCommand:
    return HostCommand(
        id=row.id,
        host=row.host,
        key=row.key,
        kind=row.kind,
        vm_id=row.vm_id,
        payload=dict(row.payload or {}),
        created_at=row.created_at,
        acked_at=row.acked_at,
        result=dict(row.result) if row.result is not None else None,
    )


class HostStore(FencedWrites):
    """Mixin for ``Store``: hosts, agent sessions and host commands."""

    _sessions: async_sessionmaker[AsyncSession]

    # --- hosts -----------------------------------------------------------------------------

    async def add_host(self, name: str, *, now: float) -> str:
        """Create host ``name`` and return its agent token (shown once, stored hashed)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            async with self._write() as session:
                session.add(
                    tables.HostRow(
                        name=name,
                        token_hash=token_hash(token),
                        created_at=now,
                        admin_state="up",
                        session=0,
                        report={},
                        observations={},
                    )
                )
        except IntegrityError as exc:
            raise HostExists(
                f"a host named {name!r} exists; pick another name, or `host remove {name}` first"
            ) from exc
        return token

    async def revoke_host(self, name: str, *, now: float) -> bool:
        async with self._write() as session:
            result = await session.execute(
                update(tables.HostRow)
                .where(tables.HostRow.name == name, tables.HostRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def remove_host(self, name: str) -> bool:
        async with self._write() as session:
            await session.execute(
                delete(tables.HostCommandRow).where(tables.HostCommandRow.host == name)
            )
            result = await session.execute(
                delete(tables.HostRow).where(tables.HostRow.name == name)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def host(self, name: str) -> HostRecord | None:
        async with self._sessions() as session:
            row = await session.get(tables.HostRow, name)
        return _host(row) if row is not None else None

    async def host_for_token(self, token: str) -> HostRecord | None:
        """The host an agent token belongs to, unless it is revoked."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(tables.HostRow).where(tables.HostRow.token_hash == token_hash(token))
                )
            ).scalar_one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        return _host(row)

    async def hosts(self) -> list[HostRecord]:
        """Every host, in one query (the loop reads this once per tick)."""
        async with self._sessions() as session:
            rows = (
                await session.execute(select(tables.HostRow).order_by(tables.HostRow.name))
            ).scalars()
            return [_host(row) for row in rows]

    async def set_admin_state(self, name: str, state: str) -> bool:
        if state not in ADMIN_STATES:
            raise ValueError(f"admin state must be one of {', '.join(ADMIN_STATES)}, not {state!r}")
        async with self._write() as session:
            result = await session.execute(
                update(tables.HostRow).where(tables.HostRow.name == name).values(admin_state=state)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_down(self, name: str, *, reason: str, now: float) -> bool:
        """Record that ``name`` is down (once: True only when it was not already)."""
        async with self._write() as session:
            result = await session.execute(
                update(tables.HostRow)
                .where(tables.HostRow.name == name, tables.HostRow.down_since.is_(None))
                .values(down_since=now, down_reason=reason)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- agent sessions --------------------------------------------------------------------

    async def hello(
        self, name: str, *, report: Mapping[str, Any], observations: Mapping[str, Any], now: float
    ) -> int:
        """A (re)connecting agent: a new session, its report; the host is no longer down."""
        async with self._write() as session:
            row = await session.get(tables.HostRow, name, with_for_update=True)
            if row is None:
                raise KeyError(name)
            row.session += 1
            row.report = dict(report)
            row.observations = dict(observations)
            row.last_seen = now
            row.down_since = None
            row.down_reason = None
            return row.session

    async def record_report(
        self,
        name: str,
        *,
        session: int,
        observations: Mapping[str, Any] | None,
        acks: Sequence[tuple[int, Mapping[str, Any]]],
        now: float,
    ) -> tuple[HostRecord, bool]:
        """An agent's heartbeat: its observations and acknowledgements, in one transaction;
        and whether it changed anything the loop acts on (``material_change``, an ack, a host
        back up), so a heartbeat that only says "still here" does not wake the loop.

        Raises ``StaleSession`` when a newer agent session exists. Acknowledging a command
        wipes its credentials; acknowledging an unknown or another host's command is ignored.
        """
        async with self._write() as session_:
            row = await session_.get(tables.HostRow, name, with_for_update=True)
            if row is None:
                raise KeyError(name)
            if row.session != session:
                raise StaleSession(
                    f"session {session} of host {name} was replaced by session {row.session}"
                )
            changed = bool(acks) or row.down_since is not None
            if observations is not None:  # None: unchanged since the last report
                changed = changed or material_change(row.observations or {}, observations)
                row.observations = dict(observations)
            row.last_seen = now
            if row.down_since is not None:
                row.down_since = None
                row.down_reason = None
            for command_id, result in acks:
                command = await session_.get(tables.HostCommandRow, command_id)
                if command is None or command.host != name or command.acked_at is not None:
                    continue
                command.acked_at = now
                command.result = dict(result)
                command.payload = {
                    k: v for k, v in (command.payload or {}).items() if k not in SECRET_PAYLOAD_KEYS
                }
            return _host(row), changed

    async def touch_host(self, name: str, *, session: int, now: float) -> bool:
        """A bare heartbeat (nothing changed): one UPDATE; False when ``session`` was replaced
        (or the host is down: its return goes through a full report)."""
        async with self._write() as session_:
            result = await session_.execute(
                update(tables.HostRow)
                .where(
                    tables.HostRow.name == name,
                    tables.HostRow.session == session,
                    tables.HostRow.down_since.is_(None),
                )
                .values(last_seen=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- commands --------------------------------------------------------------------------

    async def enqueue_command(
        self,
        host: str,
        *,
        kind: str,
        vm_id: int,
        key: str,
        payload: Mapping[str, Any],
        now: float,
    ) -> HostCommand:
        """Persist a command (or return the one already persisted under ``key``)."""
        try:
            async with self._write() as session:
                row = tables.HostCommandRow(
                    host=host,
                    key=key,
                    kind=kind,
                    vm_id=vm_id,
                    payload=dict(payload),
                    created_at=now,
                )
                session.add(row)
                await session.flush()
                return _command(row)
        except IntegrityError:
            existing = await self.command_by_key(key)
            if existing is None:
                raise
            return existing

    async def command_by_key(self, key: str) -> HostCommand | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(tables.HostCommandRow).where(tables.HostCommandRow.key == key)
                )
            ).scalar_one_or_none()
        return _command(row) if row is not None else None

    async def commands_with_keys(self, keys: Iterable[str]) -> dict[str, HostCommand]:
        wanted = list(keys)
        if not wanted:
            return {}
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(tables.HostCommandRow).where(tables.HostCommandRow.key.in_(wanted))
                )
            ).scalars()
            return {row.key: _command(row) for row in rows}

    async def count_commands(self, *, kind: str, vm_id: int) -> int:
        async with self._sessions() as session:
            found = await session.scalar(
                select(func.count())
                .select_from(tables.HostCommandRow)
                .where(tables.HostCommandRow.kind == kind, tables.HostCommandRow.vm_id == vm_id)
            )
        return int(found or 0)

    async def pending_commands(self, host: str) -> list[HostCommand]:
        """The host's unacknowledged commands, oldest first."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(tables.HostCommandRow)
                    .where(
                        tables.HostCommandRow.host == host, tables.HostCommandRow.acked_at.is_(None)
                    )
                    .order_by(tables.HostCommandRow.id)
                )
            ).scalars()
            return [_command(row) for row in rows]

    async def prune_commands(self, *, before: float) -> int:
        """Forget acknowledged commands acknowledged before ``before``."""
        async with self._write() as session:
            result = await session.execute(
                delete(tables.HostCommandRow).where(
                    tables.HostCommandRow.acked_at.is_not(None),
                    tables.HostCommandRow.acked_at < before,
                )
            )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def written_off(self, host: str, vm_ids: Iterable[int]) -> list[int]:
        """Of the VMs a host reports, those it must kill: gone, unknown, or another host's."""
        reported = sorted(set(vm_ids))
        if not reported:
            return []
        active = {state.value for state in model.ACTIVE_VM_STATES}
        async with self._sessions() as session:
            rows = await session.execute(
                select(tables.VmRow.vm_id, tables.VmRow.state, tables.VmRow.host).where(
                    tables.VmRow.vm_id.in_(reported)
                )
            )
            keep = {vm_id for vm_id, state, owner in rows if state in active and owner == host}
        return [vm_id for vm_id in reported if vm_id not in keep]
