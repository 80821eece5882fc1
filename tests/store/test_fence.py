"""A store armed with a fence commits a write only while its lease's term still runs."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import text

from blacksmith_mini.domain import model
from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.store import lease, repository, tables
from domain import builders

pytestmark = pytest.mark.anyio
LONG = 1e6  # a ttl no test outlives: these tests step the database's clock with ``now``


async def _term(store: repository.Store, holder: str, *, now: float) -> lease.Lease:
    taken = await lease.LeaseStore(store.engine).acquire("loop", holder=holder, ttl=LONG, now=now)
    assert taken is not None
    return taken


async def test_the_current_leader_writes_through_its_fence(store: repository.Store) -> None:
    leader = store.fenced(lease.Fence(await _term(store, "a", now=100.0)))
    vm = await leader.create_vm(pool=builders.DEFAULT, scope="acme/app", prefix="bm", now=1.0)
    await leader.save_vm(dataclasses.replace(vm, state=model.VmState.BOOTING))
    await leader.save_jobs([builders.job(20_000_000_001, status=model.JobStatus.QUEUED)])
    await leader.add_event(kind="test", message="ok", at=1.0)
    assert await leader.record_delivery(
        delivery_id="d1", event="ping", action=None, payload="{}", at=1.0
    )
    await leader.mark_processed(["d1"], at=2.0)
    await leader.set_control_state("draining", {"on": True}, at=1.0)
    await leader.prune(now=1.0)
    assert (await store.vm(vm.vm_id)) is not None
    assert [vm.state for vm in await store.active_vms()] == [model.VmState.BOOTING]
    assert [e.message for e in await store.events()] == ["ok"]
    assert await store.pending_deliveries() == []
    assert await store.control_state() == {"draining": {"on": True}}


async def test_a_stale_leaders_writes_raise_fenced_and_write_nothing(
    store: repository.Store,
) -> None:
    stale = store.fenced(lease.Fence(await _term(store, "a", now=100.0)))
    newer = await _term(store, "b", now=100.0 + LONG)  # a's term expired; b took over
    assert newer.token == 2
    with pytest.raises(lease.Fenced, match="term 1"):
        await stale.create_vm(pool=builders.DEFAULT, scope="acme/app", prefix="bm", now=1.0)
    with pytest.raises(lease.Fenced):
        await stale.add_event(kind="test", message="stale", at=1.0)
    with pytest.raises(lease.Fenced):
        await stale.save_jobs([builders.job(20_000_000_001, status=model.JobStatus.QUEUED)])
    with pytest.raises(lease.Fenced):
        await stale.record_delivery(
            delivery_id="d1", event="ping", action=None, payload="{}", at=1.0
        )
    with pytest.raises(lease.Fenced):
        await stale.set_control_state("draining", {"on": True}, at=1.0)
    assert await store.active_vms() == [] and await store.recent_vms(limit=5) == []
    assert await store.events() == [] and await store.open_jobs() == []
    assert await store.known_deliveries(["d1"]) == set()
    assert await store.control_state() == {}
    current = store.fenced(lease.Fence(newer))  # the new leader is not hindered
    await current.add_event(kind="test", message="new", at=2.0)
    assert [e.message for e in await store.events()] == ["new"]


async def test_a_deposed_or_overdue_fence_refuses_without_asking(store: repository.Store) -> None:
    held = await _term(store, "a", now=100.0)
    deposed = store.fenced(lease.Fence(None))
    overdue = store.fenced(lease.Fence(held, clock=lambda: held.deadline))
    with pytest.raises(lease.Fenced, match="does not lead"):
        await deposed.add_event(kind="test", message="x", at=1.0)
    with pytest.raises(lease.Fenced, match="not renewed in time"):
        await overdue.add_event(kind="test", message="x", at=1.0)
    assert await deposed.events() == []  # readers never pay for the fence


async def test_the_view_is_fenced_and_the_store_is_not(store: repository.Store) -> None:
    view = store.fenced(lease.Fence(None))
    assert view.fence is not None and store.fence is None and view.engine is store.engine
    await store.add_event(kind="api", message="unfenced", at=1.0)  # the API's writes go on
    store.arm_fence(lease.Fence(None))
    with pytest.raises(lease.Fenced):
        await store.add_event(kind="api", message="fenced", at=2.0)
    store.arm_fence(None)
    assert [e.message for e in await view.events()] == ["unfenced"]


async def test_a_takeover_waits_for_the_leaders_commit(store: repository.Store) -> None:
    """PostgreSQL: the check locks the lease row until the write commits, so a new holder's
    term starts wholly after it (and on SQLite the writers are serialised anyway)."""
    if store.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers")
    async with store.engine.connect() as connection:
        schema = await connection.scalar(text("SELECT current_schema()"))
    twin = engine_mod.create_engine(store.url, search_path=schema)
    try:
        old = await _term(store, "a", now=100.0)
        async with store.fenced(lease.Fence(old))._write() as session:
            session.add(tables.EventRow(at=1.0, kind="test", message="last", actor="a"))
            await session.flush()
            await lease.check(session, old)  # the row is locked from here to the commit
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
            takeover = asyncio.create_task(
                lease.LeaseStore(twin).acquire("loop", holder="b", ttl=LONG, now=100.0 + LONG)
            )
            await _wait_blocked_by(store, pid)
            assert not takeover.done()
        taken = await asyncio.wait_for(takeover, 15)
        assert taken is not None and taken.token == 2
        assert [e.message for e in await store.events()] == ["last"]
    finally:
        await twin.dispose()


async def _wait_blocked_by(store: repository.Store, pid: int) -> None:
    """Until some backend waits for a lock that backend ``pid`` holds (bounded)."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    async with store.engine.connect() as connection:
        for _ in range(1500):
            if await connection.scalar(query, {"pid": pid}):
                return
            await connection.rollback()
            await asyncio.sleep(0.01)
    raise AssertionError("the takeover never waited for the leader's lock")
