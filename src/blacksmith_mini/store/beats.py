"""The heartbeat's statements, run on a Core connection (no ORM session: a heartbeat every
5 s from each of 100 hosts is the store's hot path, ``bench/hosts_heartbeat.py``).

``stamp`` stamps an up host's current session in one ``UPDATE ... RETURNING`` and returns its
name, stored observations and active VMs; ``write_changed`` stamps one and stores a change of
the observations this replica remembers, if they are still what is stored (``beatgroup``
writes many such at once; this is its way on an SQLite before 3.35); ``stamp_many``
writes the stamps of heartbeats a replica answered from memory (``beatcache``);
``write_observations`` stores observations already encoded; ``acknowledge`` records a host's
acknowledgements, wiping each command's credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Text, bindparam, cast, func, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import ScalarSelect
from sqlalchemy.types import TypeDecorator

from blacksmith_mini.domain import model
from blacksmith_mini.store.tables import HostCommandRow as CommandRow
from blacksmith_mini.store.tables import HostRow, VmRow

SECRET_PAYLOAD_KEYS = ("jit_config",)
ACTIVE = sorted(state.value for state in model.ACTIVE_VM_STATES)


class _Encoded(TypeDecorator[str]):
    """A JSON column's value, already encoded: stored as it is."""

    impl = JSON
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        return None


@functools.cache
def stamp(dialect: str) -> UpdateBase:
    """The heartbeat's statement (built once): stamp an up host's current session; return its
    name, stored observations and active VMs (as "1,2,3")."""
    return (
        update(HostRow)
        .where(
            HostRow.token_hash == bindparam("hashed", type_=HostRow.token_hash.type),
            HostRow.revoked_at.is_(None),
            HostRow.session == bindparam("fence"),
            HostRow.down_since.is_(None),
        )
        .values(last_seen=bindparam("now"))
        .returning(HostRow.name, cast(HostRow.observations, Text), _held(dialect))
    )


def _held(dialect: str) -> ScalarSelect[Any]:
    """The active VMs of the host of token ``hashed``, as "1,2,3"."""
    pg = dialect == "postgresql"
    ids = func.string_agg(cast(VmRow.vm_id, Text), ",") if pg else func.group_concat(VmRow.vm_id)
    hashed = bindparam("hashed", type_=HostRow.token_hash.type)
    mine = select(HostRow.name).where(HostRow.token_hash == hashed).correlate(None)
    held = select(ids).where(VmRow.host == mine.scalar_subquery(), VmRow.state.in_(ACTIVE))
    return held.scalar_subquery()


@functools.cache
def write_changed() -> UpdateBase:
    """A change of observations this replica knows (``beatcache``), in one statement: stamp
    an up host's current session and store its new observations (``o``) only if what is
    stored is still ``old`` (another replica's write, a revoke, a session or a host found down
    since make it match nothing, and the heartbeat takes the checked way); return the host's
    active VMs. ``beatgroup`` writes many at once; this is its way on an old SQLite."""
    return (
        update(HostRow)
        .where(
            HostRow.token_hash == bindparam("hashed", type_=HostRow.token_hash.type),
            HostRow.revoked_at.is_(None),
            HostRow.session == bindparam("fence"),
            HostRow.down_since.is_(None),
            cast(HostRow.observations, Text) == bindparam("old", type_=Text()),
        )
        .values(
            last_seen=bindparam("now"),
            observations=bindparam("o", type_=_Encoded()),
            observations_version=HostRow.observations_version + 1,
        )
        .returning(_held("sqlite"))
    )


@functools.cache
def stamp_many() -> UpdateBase:
    """Stamp hosts' ``last_seen`` (executed with many ``n``/``t`` pairs: one statement)."""
    return (
        update(HostRow)
        .where(HostRow.name == bindparam("n"), HostRow.revoked_at.is_(None))
        .values(last_seen=bindparam("t"))
    )


@functools.cache
def _write_observations() -> UpdateBase:
    """Store a host's observations, already encoded (built once: a changed report's write)."""
    return (
        update(HostRow)
        .where(HostRow.name == bindparam("n"))
        .values(
            observations=bindparam("o", type_=_Encoded()),
            observations_version=HostRow.observations_version + 1,
        )
    )


async def write_observations(connection: AsyncConnection, name: str, encoded: bytes) -> None:
    await connection.execute(_write_observations(), {"n": name, "o": encoded.decode()})


async def acknowledge(
    connection: AsyncConnection,
    name: str,
    acks: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    now: float,
) -> None:
    """Record ``name``'s acknowledgements (wiping credentials); one of an unknown command,
    another host's or one already acknowledged is ignored."""
    results = dict(acks)
    found = await connection.execute(
        select(CommandRow.id, CommandRow.payload).where(
            CommandRow.id.in_(list(results)),
            CommandRow.host == name,
            CommandRow.acked_at.is_(None),
        )
    )
    for command_id, payload in found.all():
        kept = {k: v for k, v in (payload or {}).items() if k not in SECRET_PAYLOAD_KEYS}
        await connection.execute(
            update(CommandRow)
            .where(CommandRow.id == command_id)
            .values(acked_at=now, result=dict(results[command_id]), payload=kept)
        )
