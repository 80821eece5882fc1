"""The loop's lease: one holder at a time, a new token per term, and leadership handing over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from blacksmith_mini.control import leadership
from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.store import lease, repository

pytestmark = pytest.mark.anyio
TTL = 10.0


@pytest.fixture
async def twin(store: repository.Store) -> AsyncIterator[AsyncEngine]:
    """A second engine on the store's database (and schema): another replica's connections."""
    if store.dialect == "postgresql":
        async with store.engine.connect() as connection:
            schema = await connection.scalar(text("SELECT current_schema()"))
        other = engine_mod.create_engine(store.url, search_path=schema)
    else:
        other = engine_mod.create_engine(store.url)
    yield other
    await other.dispose()


async def test_two_holders_race_and_exactly_one_wins(
    store: repository.Store, twin: AsyncEngine
) -> None:
    a, b = lease.LeaseStore(store.engine), lease.LeaseStore(twin)
    got = await asyncio.gather(
        a.acquire("loop", holder="a", ttl=TTL), b.acquire("loop", holder="b", ttl=TTL)
    )
    winners = [found for found in got if found is not None]
    assert len(winners) == 1 and winners[0].token == 1
    loser = "b" if winners[0].holder == "a" else "a"
    assert await a.acquire("loop", holder=loser, ttl=TTL) is None
    state = await b.state("loop")
    assert state is not None and state.holder == winners[0].holder and state.token == 1


async def test_the_holder_acquiring_again_renews_its_term(store: repository.Store) -> None:
    leases = lease.LeaseStore(store.engine)
    first = await leases.acquire("loop", holder="a", ttl=TTL, now=100.0)
    again = await leases.acquire("loop", holder="a", ttl=TTL, now=105.0)
    assert first is not None and again is not None
    assert again.token == first.token == 1 and again.expires_at == 115.0


async def test_expiry_lets_another_take_over_with_the_next_token(store: repository.Store) -> None:
    leases = lease.LeaseStore(store.engine)
    first = await leases.acquire("loop", holder="a", ttl=TTL, now=100.0)
    assert first is not None
    assert await leases.acquire("loop", holder="b", ttl=TTL, now=109.9) is None
    second = await leases.acquire("loop", holder="b", ttl=TTL, now=110.0)
    assert second is not None and second.holder == "b" and second.token == first.token + 1
    assert await leases.renew(first, ttl=TTL, now=111.0) is None  # lost: renew says so
    assert await leases.release(first) is False
    renewed = await leases.renew(second, ttl=TTL, now=115.0)
    assert renewed is not None and renewed.token == 2 and renewed.expires_at == 125.0


async def test_an_expired_term_is_over_even_if_nobody_took_it(store: repository.Store) -> None:
    leases = lease.LeaseStore(store.engine)
    first = await leases.acquire("loop", holder="a", ttl=TTL, now=100.0)
    assert first is not None
    assert await leases.renew(first, ttl=TTL, now=110.0) is None
    again = await leases.acquire("loop", holder="a", ttl=TTL, now=110.0)
    assert again is not None and again.token == 2


async def test_release_frees_the_lease_at_once(store: repository.Store) -> None:
    leases = lease.LeaseStore(store.engine)
    first = await leases.acquire("loop", holder="a", ttl=TTL, now=100.0)
    assert first is not None and await leases.release(first)
    second = await leases.acquire("loop", holder="b", ttl=TTL, now=101.0)
    assert second is not None and second.token == 2


async def test_the_database_clock_is_used_when_no_now_is_given(store: repository.Store) -> None:
    leases = lease.LeaseStore(store.engine)
    before = leases.clock()
    taken = await leases.acquire("loop", holder="a", ttl=TTL)
    assert taken is not None
    async with store.engine.connect() as connection:
        database_now = await lease.database_now(connection)
    assert taken.expires_at - TTL <= database_now
    assert abs(database_now - time.time()) < 300  # the same machine's clock, within reason
    assert before + TTL <= taken.deadline <= leases.clock() + TTL


# --- leadership ----------------------------------------------------------------------------


class Replica:
    """A Leadership with callbacks that record what happened and signal it."""

    def __init__(self, engine: AsyncEngine, holder: str) -> None:
        self.elected = asyncio.Event()
        self.deposed = asyncio.Event()
        self.terms: list[int] = []
        self.leadership = leadership.Leadership(
            lease.LeaseStore(engine),
            holder=holder,
            on_elected=self._on_elected,
            on_deposed=self._on_deposed,
            ttl=1.0,
            retry_interval=0.05,
        )

    async def _on_elected(self, taken: lease.Lease) -> None:
        self.terms.append(taken.token)
        self.elected.set()

    async def _on_deposed(self) -> None:
        self.deposed.set()


async def test_a_follower_takes_over_when_the_leader_dies(
    store: repository.Store, twin: AsyncEngine
) -> None:
    a, b = Replica(store.engine, "a"), Replica(twin, "b")
    a.leadership.start()
    await asyncio.wait_for(a.elected.wait(), 15)
    b.leadership.start()
    assert a.leadership.is_leader and a.terms == [1]
    dead_fence = a.leadership.fence
    task = a.leadership._task
    assert task is not None and dead_fence is not None
    task.cancel()  # the leader dies: no renewal, no release, no deposition
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.wait_for(b.elected.wait(), 15)
    assert b.terms == [2] and b.leadership.is_leader and not a.deposed.is_set()
    with pytest.raises(lease.Fenced):  # the dead leader's writes are refused
        await store.fenced(dead_fence).add_event(kind="test", message="stale", at=1.0)
    assert await store.events() == []
    await b.leadership.stop()
    assert b.deposed.is_set() and not b.leadership.is_leader
    assert b.leadership.fence is not None and b.leadership.fence.lease is None
    state = await b.leadership.leases.state("loop")
    assert state is not None and state.holder == "b" and state.expires_at == 0.0


class LosingLeases(lease.LeaseStore):
    """Grants the lease, then refuses every renewal (another replica took it)."""

    async def renew(
        self, held: lease.Lease, *, ttl: float, now: float | None = None
    ) -> lease.Lease | None:
        return None


class HangingLeases(lease.LeaseStore):
    """Grants the lease, then never answers a renewal (a partition)."""

    async def renew(
        self, held: lease.Lease, *, ttl: float, now: float | None = None
    ) -> lease.Lease | None:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.mark.parametrize("leases_class", [LosingLeases, HangingLeases])
async def test_a_leader_that_cannot_renew_deposes_itself(
    store: repository.Store, leases_class: type[lease.LeaseStore]
) -> None:
    replica = Replica(store.engine, "a")
    replica.leadership.leases = leases_class(store.engine)
    replica.leadership.start()
    await asyncio.wait_for(replica.elected.wait(), 15)
    await asyncio.wait_for(replica.deposed.wait(), 15)
    await replica.leadership.stop()  # else it contends again (and may win: the row is its own)
    fence = replica.leadership.fence
    assert fence is not None and fence.lease is None and not replica.leadership.is_leader
    with pytest.raises(lease.Fenced):
        await store.fenced(fence).add_event(kind="test", message="deposed", at=1.0)
    assert await store.events() == []


async def test_sole_leadership_leads_from_start_to_stop() -> None:
    calls: list[str] = []

    async def elected(taken: lease.Lease) -> None:
        calls.append(f"elected {taken.token}")

    async def deposed() -> None:
        calls.append("deposed")

    sole = leadership.SoleLeadership(on_elected=elected, on_deposed=deposed)
    sole.start()
    await sole.stop()
    assert calls == ["elected 0", "deposed"] and sole.fence is None and not sole.is_leader
