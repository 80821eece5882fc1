"""Usage per day, repository and workflow, computed by the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from blacksmith_mini.domain import model
from blacksmith_mini.store import repository, usage
from domain import builders

pytestmark = pytest.mark.anyio

DAY = 86400.0
D1 = datetime.date(2024, 6, 10)
T1 = float(usage.day_start(D1))  # 2024-06-10T00:00:00Z
NOW = T1 + 3 * DAY  # 2024-06-13T00:00:00Z


async def vm(
    store: repository.Store,
    *,
    created_at: float,
    ended_at: float | None,
    pool: model.Pool = builders.DEFAULT,
    scope: str = "acme/app",
    job_id: int | None = None,
) -> model.Vm:
    """A VM that lived from ``created_at`` to ``ended_at`` (still running when None)."""
    made = await store.create_vm(pool=pool, scope=scope, prefix="bm", now=created_at)
    state = model.VmState.BUSY if ended_at is None else model.VmState.GONE
    saved = dataclasses.replace(
        made, state=state, state_since=ended_at or created_at, ended_at=ended_at, job_id=job_id
    )
    await store.save_vm(saved)
    return saved


async def job(store: repository.Store, job_id: int, *, repository: str, workflow: str) -> None:
    found = dataclasses.replace(builders.job(job_id, repository=repository), workflow_name=workflow)
    await store.save_jobs([found])


def rows(found: list[usage.UsageRow]) -> list[tuple[str, str, str, float, float]]:
    return [(r.day, r.repository, r.workflow, r.vm_seconds, r.vcpu_seconds) for r in found]


async def test_no_vms_no_rows(store: repository.Store) -> None:
    assert await store.usage(since=D1, until=D1, now=NOW) == []


async def test_linked_vm_counts_for_its_jobs_repository_and_workflow(
    store: repository.Store,
) -> None:
    await job(store, 11, repository="acme/app", workflow="CI")
    await job(store, 12, repository="acme/infra", workflow="Deploy")
    await vm(store, created_at=T1 + 100, ended_at=T1 + 400, job_id=11)
    await vm(store, created_at=T1 + 200, ended_at=T1 + 300, job_id=11)
    await vm(store, created_at=T1 + 500, ended_at=T1 + 560, pool=builders.LARGE, job_id=12)
    found = rows(await store.usage(since=D1, until=D1, now=NOW))
    vcpus = builders.DEFAULT.vcpus
    assert found == [
        ("2024-06-10", "acme/app", "CI", 400.0, 400.0 * vcpus),
        ("2024-06-10", "acme/infra", "Deploy", 60.0, 60.0 * 8),
    ]


async def test_unlinked_vm_counts_for_its_scope_as_idle(store: repository.Store) -> None:
    await vm(store, created_at=T1 + 10, ended_at=T1 + 70, scope="org:acme")
    await vm(store, created_at=T1 + 10, ended_at=T1 + 40, scope="acme/app", job_id=999)
    found = rows(await store.usage(since=D1, until=D1, now=NOW))
    vcpus = builders.DEFAULT.vcpus
    assert found == [
        # job 999 is not in the store: the VM counts as its scope's, unlinked.
        ("2024-06-10", "acme/app", "(idle)", 30.0, 30.0 * vcpus),
        ("2024-06-10", "org:acme", "(idle)", 60.0, 60.0 * vcpus),
    ]


async def test_a_vm_spanning_midnight_is_split_across_days(store: repository.Store) -> None:
    await job(store, 21, repository="acme/app", workflow="Nightly")
    # 23:00 on day 1 to 01:30 on day 3: 1 h, 24 h, 1.5 h.
    await vm(store, created_at=T1 + DAY - 3600, ended_at=T1 + 2 * DAY + 5400, job_id=21)
    found = rows(await store.usage(since=D1, until=D1 + datetime.timedelta(days=2), now=NOW))
    vcpus = builders.DEFAULT.vcpus
    assert found == [
        ("2024-06-10", "acme/app", "Nightly", 3600.0, 3600.0 * vcpus),
        ("2024-06-11", "acme/app", "Nightly", DAY, DAY * vcpus),
        ("2024-06-12", "acme/app", "Nightly", 5400.0, 5400.0 * vcpus),
    ]
    middle = await store.usage(
        since=D1 + datetime.timedelta(days=1), until=D1 + datetime.timedelta(days=1), now=NOW
    )
    assert rows(middle) == [("2024-06-11", "acme/app", "Nightly", DAY, DAY * vcpus)]


async def test_a_running_vm_counts_up_to_now(store: repository.Store) -> None:
    await job(store, 31, repository="acme/app", workflow="CI")
    await vm(store, created_at=T1 + DAY - 600, ended_at=None, job_id=31)
    now = T1 + DAY + 900  # 00:15 on day 2
    found = rows(await store.usage(since=D1, until=D1 + datetime.timedelta(days=30), now=now))
    vcpus = builders.DEFAULT.vcpus
    assert found == [
        ("2024-06-10", "acme/app", "CI", 600.0, 600.0 * vcpus),
        ("2024-06-11", "acme/app", "CI", 900.0, 900.0 * vcpus),
    ]


async def test_range_bounds_inverted_and_unbounded_ranges(store: repository.Store) -> None:
    await vm(store, created_at=T1 + 10, ended_at=T1 + 20)
    await vm(store, created_at=T1 + 2 * DAY + 10, ended_at=T1 + 2 * DAY + 50)
    day3 = D1 + datetime.timedelta(days=2)
    assert [r.day for r in await store.usage(since=day3, until=day3, now=NOW)] == ["2024-06-12"]
    assert await store.usage(since=day3, until=D1, now=NOW) == []
    widest = await store.usage(since=datetime.date.min, until=datetime.date.max, now=NOW)
    assert [(r.day, r.vm_seconds) for r in widest] == [("2024-06-10", 10.0), ("2024-06-12", 40.0)]
    later = datetime.date(2030, 1, 1)
    assert await store.usage(since=later, until=later, now=NOW) == []


def test_day_names() -> None:
    assert usage.day_name(T1) == "2024-06-10"
    assert usage.day_name(T1 + DAY - 0.5) == "2024-06-10"
    assert usage.day_start(datetime.date(1970, 1, 2)) == 86400
