"""The loop, one tick at a time, against an unkind GitHub and a failing driver.

Each test drives ``Reconciler.tick()`` by hand with an in-memory GitHub and driver on a hand
clock: no subprocess, no sleeping.
"""

from __future__ import annotations

import pathlib

import pytest

from blacksmith_mini.domain import backoff, model
from blacksmith_mini.github import errors
from control import fakes

pytestmark = pytest.mark.anyio
S = model.VmState


async def test_a_start_that_keeps_failing_registers_no_runner_and_backs_off(
    tmp_path: pathlib.Path,
) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    w.driver.preflight_error = (
        "kernel /x not found; fix: build it with `blacksmith-mini image build`"
    )
    attempts = 0
    for _ in range(720):  # one simulated hour, a tick every 5 s
        gone_before = len(w.loop.state.gone)
        await w.tick(advance=5.0)
        attempts += len(w.loop.state.gone) - gone_before
    assert w.github.registered == []  # preflight runs before any registration
    # one attempt at a time: once a start fails, the tick's other starts in the pool wait too
    assert 5 <= attempts <= 12  # 5 s, 10 s, 20 s ... 10 min: 12 in the first hour
    held = w.loop.state.backoff["default"]
    assert "kernel /x not found" in held.reason and held.failures == attempts
    assert "VM starts failing in pool default" in w.loop.view.waiting[1]
    await w.store.close()


async def test_registration_403_backs_off_and_a_success_resets_it(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    w.github.register_error = errors.PermissionDenied(
        "GitHub answered 403: Resource not accessible by integration; the App needs "
        "Administration: write"
    )
    for _ in range(30):
        await w.tick()
    assert 2 <= len(w.github.registered) <= 4  # 5 s, then 10 s, then 20 s: not one a tick
    assert w.loop.view.backoff["default"].failures == len(w.github.registered)
    w.github.register_error = None
    w.clock.advance(backoff.MAX_SECONDS)
    await w.tick()
    assert [vm.state for vm in w.active()] == [S.BOOTING]
    assert "default" not in w.loop.state.backoff
    await w.store.close()


async def test_one_broken_repository_never_stalls_the_others(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path, repositories=("acme/gone", "acme/app"))
    w.github.broken["acme/gone"] = errors.NotFound("GitHub answered 404 on /repos/acme/gone")
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    prefix = w.loop.runner_prefix
    stale = model.RunnerInfo(
        id=9, name=f"{prefix}-99-abcdef", scope="acme/app", status="offline", busy=False
    )
    w.github.runners_by_scope["acme/app"] = [stale]
    await w.tick()
    assert [vm.scope for vm in w.active()] == ["acme/app"]
    assert 9 in w.github.deleted  # runners are still listed and cleaned
    health = {repo.name: repo for repo in w.loop.view.repositories}
    assert not health["acme/gone"].healthy and "404" in (health["acme/gone"].error or "")
    assert health["acme/app"].healthy
    await w.store.close()


async def test_cleanup_deletes_only_this_installations_runners(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path, repositories=("org:acme",), org_scope=True)
    ours = f"{w.loop.runner_prefix}-7-abcdef"
    assert w.loop.runner_prefix.startswith("bm-") and len(w.loop.runner_prefix) == 9
    w.github.runners_by_scope["org:acme"] = [
        model.RunnerInfo(id=1, name=ours, scope="org:acme", status="offline", busy=False),
        model.RunnerInfo(id=2, name="bm-7-abcdef", scope="org:acme", status="offline", busy=False),
        model.RunnerInfo(
            id=3, name="bm-ffffff-7-abcdef", scope="org:acme", status="offline", busy=False
        ),
    ]
    await w.tick()
    assert w.github.deleted == [1]
    await w.store.close()


@pytest.mark.parametrize("lag_ticks", [0, 20])
async def test_lagging_busy_costs_no_extra_registration(
    tmp_path: pathlib.Path, lag_ticks: int
) -> None:
    """4 jobs; GitHub keeps listing each as queued for ``lag_ticks`` s after its runner took it."""
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(i, at=w.clock.now) for i in range(1, 5)]
    await w.tick()
    vms = w.active()
    assert len(vms) == 4
    for vm in vms:
        w.driver.set(vm.vm_id, runner_online=True, job_started=True)
    for _ in range(lag_ticks):
        await w.tick()
    w.github.jobs["acme/app"] = [
        model.Job(
            **{
                **fakes.queued(i).__dict__,
                "status": model.JobStatus.IN_PROGRESS,
                "runner_name": vm.name,
            }
        )
        for i, vm in zip(range(1, 5), vms, strict=True)
    ]
    for _ in range(5):
        await w.tick()
    assert len(w.github.registered) == 4
    assert all(vm.state is S.BUSY for vm in w.active())
    await w.store.close()


async def test_a_requeued_job_gets_a_vm_again(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    await w.tick()
    (first,) = w.active()
    assigned = model.Job(
        **{
            **fakes.queued(1).__dict__,
            "status": model.JobStatus.ASSIGNED,
            "runner_name": first.name,
        }
    )
    w.github.jobs["acme/app"] = [assigned]
    await w.tick()
    w.driver.set(first.vm_id, alive=False, exit_code=137)  # the VM died before the job started
    await w.tick()
    assert first.vm_id not in w.loop.state.vms
    w.github.jobs["acme/app"] = [fakes.queued(1)]  # GitHub put it back in the queue
    await w.tick()
    assert [vm.vm_id for vm in w.active()] != [] and first.vm_id not in w.loop.state.vms
    assert w.loop.state.jobs[1].status is model.JobStatus.QUEUED
    assert len(w.github.registered) == 2
    await w.store.close()


async def test_a_kept_vm_outlives_the_stopping_deadline(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    await w.tick()
    (vm,) = w.active()
    keep = w.clock.now + 600
    w.driver.set(vm.vm_id, runner_online=True, job_started=True, job_finished=True, kept_until=keep)
    for _ in range(120):  # two minutes: far past the 30 s stopping deadline
        await w.tick()
    assert w.loop.state.vms[vm.vm_id].state is S.STOPPING
    assert not [stop for stop in w.driver.stopped if stop[1]]  # never force-stopped
    assert w.loop.view.kept == {vm.vm_id: keep}
    await w.store.close()


async def test_org_scope_starts_nothing_for_repositories_the_group_does_not_serve(
    tmp_path: pathlib.Path,
) -> None:
    w = await fakes.world(tmp_path, repositories=("org:acme",), org_scope=True)
    w.github.jobs = {
        "acme/site": [fakes.queued(1, repository="acme/site", at=w.clock.now)],
        "acme/app": [fakes.queued(2, repository="acme/app", at=w.clock.now)],
    }
    w.github.public = {"acme/site"}  # the Default group does not allow public repositories
    await w.tick()
    assert len(w.active()) == 1 and len(w.github.registered) == 1
    assert "does not allow public repositories" in w.loop.view.unmatched[1]
    assert 2 not in w.loop.view.unmatched
    await w.store.close()


async def test_polls_are_paced_to_githubs_budget(tmp_path: pathlib.Path) -> None:
    """A poll that costs charged requests is spaced so the rest of GitHub's hourly budget
    (less a reserve for registrations) lasts until its reset: slower as it runs out."""
    w = await fakes.world(tmp_path)
    w.loop.observer.interval = w.loop.observer.effective_interval = 5.0
    rate = w.github.rate
    rate.limit, rate.reset_at = 5000, w.clock.now + 3600
    # the first poll fills the ETag cache (every answer charged once): it does not count
    w.loop.observer._account(seconds=1.0, sent=600, charged=600, rate=rate)
    assert w.loop.observer.effective_interval == 5.0
    # then 10 charged requests a poll; 500 of the 5,000 kept for registrations
    for remaining, expected in ((5000, 8.0), (1500, 36.0), (600, 360.0), (400, 3600.0)):
        rate.remaining = remaining
        w.loop.observer._account(seconds=1.0, sent=50, charged=10, rate=rate)
        found = w.loop.observer.effective_interval
        assert found == pytest.approx(expected, rel=0.05), (remaining, found)
    await w.store.close()


async def test_a_burst_is_started_a_tick_at_a_time_and_the_next_tick_follows_at_once(
    tmp_path: pathlib.Path,
) -> None:
    """Each start registers a runner (a mutation GitHub wants a second apart): a tick makes
    at most ``max_starts_per_tick`` of them, oldest job first, and wakes the loop for more."""
    w = await fakes.world(tmp_path, max_vms=50, max_starts_per_tick=4)
    w.github.jobs["acme/app"] = [fakes.queued(i, at=w.clock.now + i) for i in range(1, 11)]
    w.loop._wake.clear()
    await w.tick()
    assert len(w.github.registered) == 4
    assert w.loop._wake.is_set()  # capped: the loop ticks again without waiting
    await w.tick()
    assert len(w.github.registered) == 8
    w.loop._wake.clear()
    await w.tick()
    assert len(w.github.registered) == 10  # 4, 4, then the last 2
    assert not w.loop._wake.is_set()  # under the cap: the loop waits as usual
    assert len(w.active()) == 10  # one VM per job, none twice
    await w.store.close()
