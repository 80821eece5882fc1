"""Leases with fencing tokens: which replica leads the loop, and the check its writes pass.

A lease is one row of ``leases``: its holder, a fencing token that grows by one with every new
holder (and every new term of the same holder), and when it expires. Taking it is a
compare-and-set on the token, so of two replicas racing for a free or expired lease exactly
one wins; renewing it is a compare-and-set on holder and token that fails once it has expired.

Clocks. Expiry is compared in one clock only: the database's (``clock_timestamp()`` on
PostgreSQL, ``julianday('now')`` on SQLite), read in the transaction that takes or renews the
lease. Replicas' own clocks may be skewed by seconds; had each written and compared its own
``time.time()``, a replica with a fast clock would take a lease its holder still believes in.
The ``now`` argument overrides the database's clock (tests use it to step time); callers must
then pass it to every call on that lease name. The holder itself never compares database
timestamps with its own clock: ``Lease.deadline`` is a *local* monotonic time, the start of the
call that took or renewed the lease plus ``ttl``. The database's expiry is ``ttl`` after a
reading taken later than that start, so the holder's deadline never falls after the database's
expiry, whatever the skew between their clocks (only their rates matter).

Fencing. A leader's write must not commit once another replica holds the lease: ``check``,
run inside the writer's transaction just before its commit, re-reads the lease row with the
holder and token the leader got, and raises ``Fenced`` (the transaction rolls back) if either
changed. On PostgreSQL the row is read ``FOR SHARE``: a new holder's ``UPDATE`` waits for the
writer's commit, so the write lands wholly before the new term starts or is refused. On SQLite
the check is a no-op ``UPDATE`` of the row, which puts it in the writer's (serialised) write
transaction. ``FencedWrites`` gives a ``Store`` the ``_write()`` every write goes through;
readers never pay for the fence.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Self

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from blacksmith_mini.store import tables

Clock = Callable[[], float]
_ROW = tables.LeaseRow


@dataclasses.dataclass(frozen=True, kw_only=True)
class Lease:
    """A term of holding lease ``name``: what a holder shows to renew it or to write."""

    name: str
    holder: str
    token: int
    expires_at: float  # the database's clock (or the ``now`` the caller passed)
    deadline: float  # the holder's monotonic clock: stop acting before this


@dataclasses.dataclass(frozen=True, kw_only=True)
class LeaseState:
    """What the ``leases`` row says (for status pages): not proof of holding anything."""

    name: str
    holder: str
    token: int
    expires_at: float
    renewed_at: float


class Fenced(Exception):
    """A write of a leader that no longer holds its lease; its transaction was rolled back."""


async def database_now(connection: AsyncConnection) -> float:
    """Epoch seconds by the database's clock (the one all replicas share)."""
    if connection.dialect.name == "postgresql":
        query = "SELECT extract(epoch from clock_timestamp())"
    else:
        query = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    return float(await connection.scalar(text(query)))


class LeaseStore:
    """Takes, renews and releases leases over an engine (its own short transactions)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = time.monotonic) -> None:
        self.engine = engine
        self.clock = clock

    async def _now(self, connection: AsyncConnection, now: float | None) -> float:
        return now if now is not None else await database_now(connection)

    async def acquire(
        self, name: str, *, holder: str, ttl: float, now: float | None = None
    ) -> Lease | None:
        """Take lease ``name`` if it is free or expired (a new term: token + 1), renew it if
        ``holder`` holds it already (same token); None if another holder's term runs."""
        started = self.clock()
        try:
            async with self.engine.begin() as connection:
                at = await self._now(connection, now)
                found = (
                    await connection.execute(
                        select(_ROW.holder, _ROW.token, _ROW.expires_at).where(_ROW.name == name)
                    )
                ).first()
                values = {"holder": holder, "expires_at": at + ttl, "renewed_at": at}
                if found is None:
                    token = 1
                    await connection.execute(insert(_ROW).values(name=name, token=token, **values))
                else:
                    old_holder, old_token, expires_at = found
                    if expires_at > at and old_holder != holder:
                        return None
                    held = expires_at > at
                    token = old_token if held else old_token + 1
                    expiry = _ROW.expires_at > at if held else _ROW.expires_at <= at
                    result = await connection.execute(
                        update(_ROW)
                        .where(
                            _ROW.name == name,
                            _ROW.holder == old_holder,
                            _ROW.token == old_token,
                            expiry,
                        )
                        .values(token=token, **values)
                    )
                    if result.rowcount != 1:
                        return None
        except IntegrityError:  # another replica inserted the row first
            return None
        return Lease(
            name=name, holder=holder, token=token, expires_at=at + ttl, deadline=started + ttl
        )

    async def renew(self, lease: Lease, *, ttl: float, now: float | None = None) -> Lease | None:
        """Extend ``lease`` by ``ttl`` from now; None if it was lost (taken over, released or
        expired: an expired term is over even if nobody took it, ``acquire`` starts a new
        one)."""
        started = self.clock()
        async with self.engine.begin() as connection:
            at = await self._now(connection, now)
            result = await connection.execute(
                update(_ROW)
                .where(
                    _ROW.name == lease.name,
                    _ROW.holder == lease.holder,
                    _ROW.token == lease.token,
                    _ROW.expires_at > at,
                )
                .values(expires_at=at + ttl, renewed_at=at)
            )
            if result.rowcount != 1:
                return None
        return dataclasses.replace(lease, expires_at=at + ttl, deadline=started + ttl)

    async def release(self, lease: Lease) -> bool:
        """End ``lease``'s term now so another replica need not wait for its expiry; False if
        it was not held any more. The token stays: the next term gets token + 1."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(_ROW)
                .where(
                    _ROW.name == lease.name,
                    _ROW.holder == lease.holder,
                    _ROW.token == lease.token,
                )
                .values(expires_at=0.0)
            )
            return result.rowcount == 1

    async def state(self, name: str) -> LeaseState | None:
        async with self.engine.connect() as connection:
            found = (
                await connection.execute(
                    select(_ROW.holder, _ROW.token, _ROW.expires_at, _ROW.renewed_at).where(
                        _ROW.name == name
                    )
                )
            ).first()
        if found is None:
            return None
        holder, token, expires_at, renewed_at = found
        return LeaseState(
            name=name, holder=holder, token=token, expires_at=expires_at, renewed_at=renewed_at
        )


async def check(session: AsyncSession, lease: Lease) -> None:
    """Inside the caller's write transaction: raise ``Fenced`` unless ``lease``'s holder and
    token still hold the row (it stays locked, on PostgreSQL, until the caller commits)."""
    connection = await session.connection()
    holds = (_ROW.name == lease.name, _ROW.holder == lease.holder, _ROW.token == lease.token)
    if connection.dialect.name == "postgresql":
        found = await connection.scalar(select(_ROW.token).where(*holds).with_for_update(read=True))
        held = found is not None
    else:
        result = await connection.execute(update(_ROW).where(*holds).values(token=_ROW.token))
        held = result.rowcount == 1
    if not held:
        raise Fenced(
            f"lease {lease.name!r} term {lease.token} of {lease.holder!r} is over (another "
            "replica took it over); this write was rolled back"
        )


class Fence:
    """The lease a leader's writes must still hold: set on election and on every renewal,
    cleared (every write then raises ``Fenced``) on deposition."""

    def __init__(self, lease: Lease | None = None, *, clock: Clock = time.monotonic) -> None:
        self.lease = lease
        self.clock = clock

    async def check(self, session: AsyncSession) -> None:
        lease = self.lease
        if lease is None:
            raise Fenced("this replica does not lead (it was deposed); the write was rolled back")
        if self.clock() >= lease.deadline:
            raise Fenced(
                f"lease {lease.name!r} term {lease.token} was not renewed in time; "
                "the write was rolled back"
            )
        await check(session, lease)


class FencedWrites:
    """Mixed into ``Store`` (through its mixins): ``_write()``, the one way writes begin, checks
    the armed fence before committing."""

    _sessions: async_sessionmaker[AsyncSession]
    fence: Fence | None = None

    def arm_fence(self, fence: Fence | None) -> None:
        """Check ``fence`` in every later write transaction (None: stop checking)."""
        self.fence = fence

    def fenced(self, fence: Fence | None) -> Self:
        """A view of this store sharing its engine, whose writes check ``fence``; this store's
        own writes stay unfenced (close the original, never the view)."""
        view = copy.copy(self)
        view.fence = fence
        return view

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: commits on leaving the block, after the fence check."""
        async with self._sessions.begin() as session:
            yield session
            fence = self.fence
            if fence is not None:
                await session.flush()
                await fence.check(session)
