"""The repository behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from blacksmith_mini.domain import model
from blacksmith_mini.store import repository
from domain import builders

pytestmark = pytest.mark.anyio


async def test_create_vm_persists_a_unique_name_first(store: repository.Store) -> None:
    first = await store.create_vm(pool=builders.DEFAULT, scope="acme/app", prefix="bm", now=1.0)
    second = await store.create_vm(pool=builders.DEFAULT, scope="acme/app", prefix="bm", now=2.0)
    assert first.name.startswith(f"bm-{first.vm_id}-") and first.name != second.name
    assert first.state is model.VmState.PENDING
    assert [vm.vm_id for vm in await store.active_vms()] == [first.vm_id, second.vm_id]


async def test_vm_round_trip_and_gone_leaves_active(store: repository.Store) -> None:
    vm = await store.create_vm(pool=builders.LARGE, scope="org:acme", prefix="bm", now=1.0)
    gone = dataclasses.replace(
        vm,
        state=model.VmState.GONE,
        ended_at=9.0,
        death_reason=model.DeathReason.BOOT_TIMEOUT,
        runner_id=12,
        pid=44,
        ip="172.16.0.2",
    )
    await store.save_vm(gone)
    assert await store.vm(vm.vm_id) == gone
    assert await store.active_vms() == []
    assert (await store.recent_vms(limit=5))[0] == gone


async def test_jobs_upsert_and_counters(store: repository.Store) -> None:
    job = builders.job(20_000_000_001, status=model.JobStatus.QUEUED)
    await store.save_jobs([job])
    done = dataclasses.replace(
        job,
        status=model.JobStatus.COMPLETED,
        conclusion="success",
        started_at=3.0,
        completed_at=5.0,
    )
    failed = builders.job(20_000_000_002, status=model.JobStatus.COMPLETED, conclusion="failure")
    cancelled = builders.job(
        20_000_000_003, status=model.JobStatus.COMPLETED, conclusion="cancelled"
    )
    await store.save_jobs([done, failed, cancelled])
    assert await store.job(job.id) == done
    assert await store.open_jobs() == []
    counters = await store.counters()
    assert counters == repository.Counters(completed_jobs=3, successful_jobs=1, rated_jobs=2)
    assert await store.queue_to_start_seconds(since=0, until=10) == [3.0]


async def test_events_filter_and_times(store: repository.Store) -> None:
    await store.add_event(kind="vm.requested", message="a", at=1.0, vm_id=1)
    await store.add_event(kind="vm.gone", message="b", at=2.0, vm_id=1, job_id=7)
    await store.add_event(kind="vm.requested", message="c", at=3.0, vm_id=2)
    assert [e.message for e in await store.events(vm_id=1)] == ["a", "b"]
    assert [e.message for e in await store.events(job_id=7)] == ["b"]
    times = await store.event_times(kinds=("vm.requested", "vm.gone"), since=1.5)
    assert times == {"vm.requested": [3.0], "vm.gone": [2.0]}


async def test_samples(store: repository.Store) -> None:
    sample = repository.Sample(
        at=100.0,
        step_seconds=60,
        active_vms=2,
        queued_jobs=1,
        spawns=3,
        deaths=1,
        queue_to_start_p50=4.0,
        queue_to_start_p95=None,
    )
    await store.add_sample(sample)
    assert await store.samples(since=50) == [sample]
    assert await store.samples(since=150) == []


async def test_migrations_are_idempotent(store: repository.Store) -> None:
    await store.open()
    assert await store.ping()


async def test_control_state_round_trip(store: repository.Store) -> None:
    await store.set_control_state("draining", {"on": True, "actor": "alice"}, at=1.0)
    await store.set_control_state("draining", {"on": False, "actor": "bob"}, at=2.0)
    assert await store.control_state() == {"draining": {"on": False, "actor": "bob"}}


async def test_samples_are_rolled_up_and_old_events_pruned(store: repository.Store) -> None:
    day = 86400.0
    now = 100 * day
    for minute in range(30):  # 30 raw samples, 3 days old, within one 15-minute... two buckets
        await store.add_sample(
            repository.Sample(
                at=now - 3 * day + minute * 60,
                step_seconds=60,
                active_vms=2,
                queued_jobs=4,
                spawns=1,
                deaths=1,
                queue_to_start_p50=float(minute),
                queue_to_start_p95=60.0,
            )
        )
    await store.add_sample(
        repository.Sample(
            at=now - 100,
            step_seconds=60,
            active_vms=1,
            queued_jobs=0,
            spawns=0,
            deaths=0,
            queue_to_start_p50=None,
            queue_to_start_p95=None,
        )
    )
    await store.add_event(kind="old", message="x", at=now - 40 * day)
    await store.add_event(kind="new", message="y", at=now - 1)
    removed = await store.prune(now=now)
    samples = await store.samples(since=0)
    rolled = [s for s in samples if s.step_seconds == 900]
    assert sum(s.spawns for s in rolled) == 30 and {s.active_vms for s in rolled} == {2}
    assert [s.step_seconds for s in samples if s.at > now - day] == [60]
    assert len(samples) < 31 and removed["events"] == 1
    assert [e.kind for e in await store.events()] == ["new"]
