"""Which replica runs the loop: the "loop" lease, taken, renewed, and given up in time.

A follower tries to take the lease every ``retry_interval`` seconds; the leader renews it every
``ttl / 3``. The leader deposes itself ``margin`` seconds before its local deadline (see
``store.lease``: the deadline never falls after the database's expiry), whether a renewal was
refused or the database did not answer in time, so it stops acting before another replica can
take over. With the defaults (ttl 10 s, retry 2 s) a dead leader's lease expires at most 10 s
after its last renewal and a follower holds it within 2 s more.

``on_elected(lease)`` runs when a term starts (start the loop there), ``on_deposed()`` when it
ends (stop the loop there, and wait for it: the margin is its time to stop). Between them the
``fence`` holds the current term, so a store armed with it refuses writes the moment the term
ends. ``SoleLeadership`` is the single-box (SQLite) variant: always the leader, nothing to
fence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from blacksmith_mini.store import lease as lease_mod

log = logging.getLogger(__name__)

LOOP_LEASE = "loop"
OnElected = Callable[[lease_mod.Lease], Awaitable[None]]
OnDeposed = Callable[[], Awaitable[None]]
SOLE_LEASE = lease_mod.Lease(
    name=LOOP_LEASE, holder="sole", token=0, expires_at=math.inf, deadline=math.inf
)


def replica_id() -> str:
    """A holder id unique to this process's life (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Leader(Protocol):
    fence: lease_mod.Fence | None

    @property
    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Leadership:
    """Contends for the lease ``name`` as ``holder``; ``start`` it, ``stop`` it on shutdown."""

    def __init__(
        self,
        leases: lease_mod.LeaseStore,
        *,
        holder: str,
        on_elected: OnElected,
        on_deposed: OnDeposed,
        name: str = LOOP_LEASE,
        ttl: float = 10.0,
        retry_interval: float = 2.0,
        margin: float | None = None,
    ) -> None:
        self.leases = leases
        self.holder = holder
        self.name = name
        self.ttl = ttl
        self.retry_interval = retry_interval
        self.margin = ttl / 5 if margin is None else margin
        self.fence: lease_mod.Fence | None = lease_mod.Fence(clock=leases.clock)
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._lease: lease_mod.Lease | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def lease(self) -> lease_mod.Lease | None:
        return self._lease

    @property
    def is_leader(self) -> bool:
        """Holding the lease, with time left to act (check it before an external act)."""
        lease = self._lease
        return lease is not None and self.leases.clock() < lease.deadline - self.margin

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"leadership-{self.name}")

    async def stop(self) -> None:
        """Stop contending; a leader is deposed and releases the lease (no wait for expiry)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        held = self._lease
        if held is not None:
            await self._depose("stopping")
            try:
                await self.leases.release(held)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("could not release lease %s (it expires by itself): %s", held.name, exc)

    async def run(self) -> None:
        while True:
            if self._lease is None:
                if not await self._contend():
                    await asyncio.sleep(self.retry_interval)
            else:
                await self._hold(self._lease)

    async def _contend(self) -> bool:
        try:
            taken = await asyncio.wait_for(
                self.leases.acquire(self.name, holder=self.holder, ttl=self.ttl), self.ttl
            )
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            log.warning("could not contend for lease %s: %s", self.name, exc)
            return False
        if taken is None:
            return False
        self._lease = taken
        assert self.fence is not None
        self.fence.lease = taken
        log.info("elected: lease %s term %d held by %s", self.name, taken.token, self.holder)
        try:
            await self._on_elected(taken)
        except Exception:
            log.exception("on_elected failed; giving lease %s up", self.name)
            await self._depose("on_elected failed")
            with contextlib.suppress(SQLAlchemyError, OSError):
                await self.leases.release(taken)
            return False
        return True

    async def _hold(self, held: lease_mod.Lease) -> None:
        """Renew ``held`` once (waiting for its time first), or depose."""
        clock = self.leases.clock
        depose_at = held.deadline - self.margin
        renew_at = min(held.deadline - self.ttl + self.ttl / 3, depose_at)
        await asyncio.sleep(max(0.0, renew_at - clock()))
        while True:
            left = depose_at - clock()
            if left <= 0:
                await self._depose("the lease could not be renewed in time")
                return
            try:
                renewed = await asyncio.wait_for(self.leases.renew(held, ttl=self.ttl), left)
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning("could not renew lease %s (%.1f s left): %s", self.name, left, exc)
                await asyncio.sleep(min(self.ttl / 10, max(0.0, depose_at - clock())))
                continue
            if renewed is None:
                await self._depose("the lease was lost")
                return
            self._lease = renewed
            assert self.fence is not None
            self.fence.lease = renewed
            return

    async def _depose(self, why: str) -> None:
        """Fence first (writes stop at once), then let the loop stop."""
        lease = self._lease
        self._lease = None
        if self.fence is not None:
            self.fence.lease = None
        log.warning("deposed (%s): lease %s term %s", why, self.name, lease and lease.token)
        try:
            await self._on_deposed()
        except Exception:
            log.exception("on_deposed failed")


class SoleLeadership:
    """One box (SQLite): leads from ``start`` to ``stop``; no lease, no fence."""

    def __init__(self, *, on_elected: OnElected, on_deposed: OnDeposed) -> None:
        self.fence: lease_mod.Fence | None = None
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._task: asyncio.Task[None] | None = None
        self._leading = False

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._elect(), name="leadership-sole")

    async def _elect(self) -> None:
        self._leading = True
        try:
            await self._on_elected(SOLE_LEASE)
        except Exception:
            log.exception("on_elected failed")

    async def stop(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._leading:
            self._leading = False
            await self._on_deposed()


def leadership_for(
    leases: lease_mod.LeaseStore,
    *,
    holder: str,
    on_elected: OnElected,
    on_deposed: OnDeposed,
    ttl: float = 10.0,
) -> Leader:
    """Contend on PostgreSQL (replicas may share it); lead alone on SQLite."""
    if leases.engine.dialect.name != "postgresql":
        return SoleLeadership(on_elected=on_elected, on_deposed=on_deposed)
    return Leadership(leases, holder=holder, on_elected=on_elected, on_deposed=on_deposed, ttl=ttl)
