"""Hosts and their agents' commands: the rows behind the multi-host mode.

A host's token is made once by ``add_host`` and stored only as its SHA-256, so the database
never holds a usable credential; ``revoke_host`` ends it. Every agent ``hello`` bumps the
host's ``session``: a message carrying an older session comes from a replaced agent process
and is refused (the host's fencing token). Commands are persisted before they are sent, keyed
by an idempotency key (``kind:vm_id:attempt``), and stay pending until the agent acknowledges
them; a start's JIT config (a credential) is wiped from the row when it is acknowledged.

Heartbeats, the hot path, are ``store/heartbeats.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sqlalchemy import Select, Text, cast, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from blacksmith_mini.domain.hostbook import HostCommand, HostRecord
from blacksmith_mini.store import beatcache, beats, observed
from blacksmith_mini.store.heartbeats import HeartbeatStore, token_hash
from blacksmith_mini.store.lease import FencedWrites
from blacksmith_mini.store.tables import HostCommandRow as CommandRow
from blacksmith_mini.store.tables import HostRow

TOKEN_PREFIX = "bmh_"  # noqa: S105 - a prefix, not a secret
ADMIN_STATES = ("up", "cordoned", "draining")


class HostExists(Exception):
    """``add_host`` was given a name that is taken."""


_COPIED = ("report", "observations")
_HOST_FIELDS = [f.name for f in dataclasses.fields(HostRecord) if f.name not in _COPIED]


class AgentToken(NamedTuple):
    """Who an agent's token names, as the agent routes need it (no observations loaded)."""

    name: str
    session: int
    down_since: float | None


def _host(row: Any, observations: Mapping[str, Any] | None = None) -> HostRecord:
    values = {name: getattr(row, name) for name in _HOST_FIELDS}
    seen = dict(row.observations or {}) if observations is None else observations
    return HostRecord(**values, report=dict(row.report or {}), observations=seen)


@functools.cache
def _listed() -> Select[Any]:
    """Every host's columns but its observations, by name (built once: the loop's read)."""
    columns = [getattr(HostRow, name) for name in (*_HOST_FIELDS, "report")]
    return select(*columns, HostRow.token_hash, HostRow.observations_version).order_by(HostRow.name)


def _version(row: Any) -> tuple[str, int]:
    """Which version of its observations ``row`` holds: its token's and the count of writes."""
    return str(row.token_hash), int(row.observations_version)


def _command(row: CommandRow) -> HostCommand:
    values = {field.name: getattr(row, field.name) for field in dataclasses.fields(HostCommand)}
    result = dict(row.result) if row.result is not None else None
    return HostCommand(**values | {"payload": dict(row.payload or {}), "result": result})


class HostStore(HeartbeatStore, FencedWrites):
    """Mixin for ``Store``: hosts, agent sessions and host commands."""

    _sessions: async_sessionmaker[AsyncSession]
    engine: AsyncEngine
    _decoded: dict[str, tuple[str, dict[str, Any]]]  # host -> its observations' text, decoded
    _read: dict[str, tuple[str, int]]  # host -> the version ``hosts()`` read (``_version``)
    _beats: beatcache.BeatCache  # heartbeats answered from memory (shared by fenced views)

    # --- hosts -----------------------------------------------------------------------------

    async def add_host(self, name: str, *, now: float) -> str:
        """Create host ``name`` and return its agent token (shown once, stored hashed)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        try:
            async with self._write() as session:
                session.add(
                    HostRow(
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
        self._beats.forget(name)
        async with self._write() as session:
            result = await session.execute(
                update(HostRow)
                .where(HostRow.name == name, HostRow.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def remove_host(self, name: str) -> bool:
        self._beats.forget(name)
        async with self._write() as session:
            await session.execute(delete(CommandRow).where(CommandRow.host == name))
            result = await session.execute(delete(HostRow).where(HostRow.name == name))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def host(self, name: str) -> HostRecord | None:
        async with self._sessions() as session:
            row = await session.get(HostRow, name)
        return _host(row) if row is not None else None

    async def host_for_token(self, token: str) -> AgentToken | None:
        """The host an agent token belongs to, unless it is revoked (not its observations)."""
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(HostRow.name, HostRow.session, HostRow.down_since).where(
                        HostRow.token_hash == token_hash(token), HostRow.revoked_at.is_(None)
                    )
                )
            ).first()
        return AgentToken(name=row[0], session=row[1], down_since=row[2]) if row else None

    async def hosts(self) -> list[HostRecord]:
        """Every host, in one query; a host's observations (30 KB at 100 VMs) are read, and
        decoded, only when their version moved since the last call (one more query, for those
        hosts): the loop reads this once per tick, and most hosts' VMs said nothing new. A
        version is one host's (its token's: a host removed and added again starts afresh)."""
        async with self.engine.connect() as connection:  # Core rows: no ORM instances
            rows = (await connection.execute(_listed())).all()
            moved = [row.name for row in rows if self._read.get(row.name) != _version(row)]
            if moved:
                text = cast(HostRow.observations, Text)
                columns = (HostRow.name, HostRow.token_hash, HostRow.observations_version, text)
                fresh = select(*columns).where(HostRow.name.in_(moved))
                for name, hashed, version, stored in await connection.execute(fresh):
                    self._read[name] = (hashed, version)
                    # in place: shared with the store's fenced views (a report's way writes
                    # there what it committed, so an unmoved version's entry is current)
                    self._decoded[name] = self._decode(name, stored)
        for gone in self._read.keys() - {row.name for row in rows}:
            del self._read[gone]
            self._decoded.pop(gone, None)
        known = self._decoded
        return [_host(row, known[row.name][1]) for row in rows if row.name in known]

    async def set_admin_state(self, name: str, state: str) -> bool:
        if state not in ADMIN_STATES:
            raise ValueError(f"admin state must be one of {', '.join(ADMIN_STATES)}, not {state!r}")
        async with self._write() as session:
            result = await session.execute(
                update(HostRow).where(HostRow.name == name).values(admin_state=state)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_down(self, name: str, *, reason: str, now: float) -> bool:
        """Record that ``name`` is down (once: True only when it was not already)."""
        self._beats.forget(name)
        async with self._write() as session:
            result = await session.execute(
                update(HostRow)
                .where(HostRow.name == name, HostRow.down_since.is_(None))
                .values(down_since=now, down_reason=reason)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- agent sessions --------------------------------------------------------------------

    async def hello(
        self, name: str, *, report: Mapping[str, Any], observations: Mapping[str, Any], now: float
    ) -> int:
        """A (re)connecting agent: a new session, its report; the host is no longer down."""
        self._beats.forget(name)
        async with self._write() as session:
            row = await session.get(HostRow, name, with_for_update=True)
            if row is None:
                raise KeyError(name)
            row.session += 1
            row.report = dict(report)
            row.last_seen, row.down_since, row.down_reason = now, None, None
            await beats.write_observations(
                await session.connection(), name, observed.encode(observations)
            )
            return row.session

    async def back_up(self, name: str, *, session: int, now: float) -> bool:
        """A down host's agent reported in its current session: the host is up again (False
        when ``session`` is not current, or the host was not down)."""
        self._beats.forget(name)
        async with self._write() as session_:
            result = await session_.execute(
                update(HostRow)
                .where(
                    HostRow.name == name,
                    HostRow.session == session,
                    HostRow.down_since.is_not(None),
                )
                .values(last_seen=now, down_since=None, down_reason=None)
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
                row = CommandRow(
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
                await session.execute(select(CommandRow).where(CommandRow.key == key))
            ).scalar_one_or_none()
        return _command(row) if row is not None else None

    async def commands_with_keys(self, keys: Iterable[str]) -> dict[str, HostCommand]:
        wanted = list(keys)
        if not wanted:
            return {}
        async with self._sessions() as session:
            rows = (
                await session.execute(select(CommandRow).where(CommandRow.key.in_(wanted)))
            ).scalars()
            return {row.key: _command(row) for row in rows}

    async def count_commands(self, *, kind: str, vm_id: int) -> int:
        async with self._sessions() as session:
            found = await session.scalar(
                select(func.count())
                .select_from(CommandRow)
                .where(CommandRow.kind == kind, CommandRow.vm_id == vm_id)
            )
        return int(found or 0)

    async def pending_commands(self, host: str) -> list[HostCommand]:
        """The host's unacknowledged commands, oldest first."""
        async with self._sessions() as session:
            rows = (
                await session.execute(
                    select(CommandRow)
                    .where(CommandRow.host == host, CommandRow.acked_at.is_(None))
                    .order_by(CommandRow.id)
                )
            ).scalars()
            return [_command(row) for row in rows]

    async def prune_commands(self, *, before: float) -> int:
        """Forget acknowledged commands acknowledged before ``before``."""
        acked = CommandRow.acked_at
        async with self._write() as session:
            result = await session.execute(
                delete(CommandRow).where(acked.is_not(None), acked < before)
            )
        return int(result.rowcount)  # type: ignore[attr-defined]
