"""The planner against GitHub's unkind behaviour: failing starts back off per pool, a lagging
``busy`` flag creates no demand, org runner groups serve only some repositories, a failed
job's VM is kept, and a re-queued job is served again."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import backoff, facts, groups, jobs, model, planner, waiting
from domain import builders

S = model.VmState
J = model.JobStatus
ONLINE = facts.VmFacts(alive=True, runner_online=True)


def starts(actions: list[act.Action]) -> list[act.StartVm]:
    return [a for a in actions if isinstance(a, act.StartVm)]


# --- start back-off --------------------------------------------------------------------------


def test_backoff_doubles_from_seconds_to_minutes_and_is_capped() -> None:
    delays = [backoff.delay(n) for n in range(1, 12)]
    assert delays[0] == backoff.FIRST_SECONDS
    assert all(b == min(2 * a, backoff.MAX_SECONDS) for a, b in itertools.pairwise(delays))
    assert delays[-1] == backoff.MAX_SECONDS <= 600
    held = None
    for now in (0.0, 10.0, 30.0):
        held = backoff.after_failure(held, pool="default", reason="kernel missing", now=now)
    assert held is not None and held.failures == 3 and held.since == 0.0
    assert held.next_try_at == 30.0 + backoff.delay(3)


def test_a_backed_off_pool_gets_no_start_until_its_next_try() -> None:
    held = backoff.after_failure(None, pool="default", reason="kernel /x not found", now=100.0)
    snap = model.Snapshot(jobs=(builders.job(1),), vms=(), facts={}, backoff={"default": held})
    assert starts(planner.plan(snap, builders.policy(), 101.0)) == []
    assert len(starts(planner.plan(snap, builders.policy(), held.next_try_at))) == 1


def test_backoff_holds_one_pool_only() -> None:
    held = backoff.after_failure(None, pool="default", reason="x", now=0.0)
    large = builders.job(2, job_labels=("self-hosted", "large"))
    snap = model.Snapshot(
        jobs=(builders.job(1), large), vms=(), facts={}, backoff={"default": held}
    )
    assert [s.pool for s in starts(planner.plan(snap, builders.policy(), 1.0))] == ["large"]


def test_a_pending_vm_is_not_resumed_while_its_pool_backs_off() -> None:
    pending = builders.vm(1, state=S.PENDING, state_since=0.0)
    held = backoff.after_failure(None, pool="default", reason="403", now=0.0)
    snap = model.Snapshot(jobs=(), vms=(pending,), facts={}, backoff={"default": held})
    plan = planner.plan(snap, builders.policy(), 1.0)
    assert not [a for a in plan if isinstance(a, act.ResumeStart)]
    free = dataclasses.replace(snap, backoff={})
    assert [a for a in planner.plan(free, builders.policy(), 1.0) if isinstance(a, act.ResumeStart)]


def test_waiting_reason_names_the_backoff_and_its_fix() -> None:
    held = backoff.after_failure(
        None, pool="default", reason="kernel /x not found; fix: build the image", now=0.0
    )
    reason = waiting.waiting_reason(
        builders.job(1), policy=builders.policy(), vms=[], now=1.0, backoff={"default": held}
    )
    assert reason is not None
    assert "VM starts failing in pool default" in reason and "kernel /x not found" in reason
    assert "next try in 4s" in reason


# --- GitHub's busy flag and job status lag -----------------------------------------------------


@pytest.mark.parametrize("lag", [0.0, 20.0, 45.0])
def test_lagging_github_creates_no_phantom_demand(lag: float) -> None:
    """4 jobs, 4 VMs whose runners took them at t=10; GitHub still lists them queued until
    t=10+lag. No further VM is started while GitHub catches up."""
    policy = builders.policy(max_vms=10)
    vms = tuple(builders.vm(i, state=S.BUSY, state_since=10.0) for i in range(1, 5))
    queued = tuple(builders.job(i) for i in range(1, 5))
    fact = {vm.vm_id: facts.VmFacts(alive=True, job_started=True) for vm in vms}
    for now in (10.0, 10.0 + lag / 2, 10.0 + lag):
        snap = model.Snapshot(jobs=queued, vms=vms, facts=fact)
        assert starts(planner.plan(snap, policy, now)) == []
    # GitHub caught up: every job now names its runner
    caught_up = tuple(
        builders.job(i, status=J.IN_PROGRESS, runner_name=vms[i - 1].name) for i in range(1, 5)
    )
    snap = model.Snapshot(jobs=caught_up, vms=vms, facts=fact)
    assert starts(planner.plan(snap, policy, 11.0 + lag)) == []


def test_github_saying_not_busy_never_makes_a_busy_vm_idle_or_stopped() -> None:
    busy = builders.vm(1, state=S.BUSY, state_since=0.0)
    runner = model.RunnerInfo(id=7, name=busy.name, scope="acme/app", status="online", busy=False)
    snap = model.Snapshot(
        jobs=(),
        vms=(busy,),
        facts={1: facts.VmFacts(alive=True, job_started=True)},
        runners=(runner,),
    )
    plan = planner.plan(snap, builders.policy(), 10_000.0)
    assert not [a for a in plan if getattr(a, "vm_id", None) == 1]
    assert not [a for a in plan if isinstance(a, act.DeregisterRunner)]


# --- organization runner groups ----------------------------------------------------------------

DEFAULT_GROUP = groups.GroupAccess(
    name="Default", visibility="all", allows_public_repositories=False
)
SELECTED = groups.GroupAccess(
    name="ci",
    visibility="selected",
    allows_public_repositories=True,
    selected_repositories=frozenset({"acme/app"}),
)
PRIVATE = groups.GroupAccess(name="p", visibility="private", allows_public_repositories=True)


@pytest.mark.parametrize(
    ("group", "repository", "private", "served"),
    [
        (DEFAULT_GROUP, "acme/app", True, True),
        (DEFAULT_GROUP, "acme/site", False, False),  # public, not allowed on Default
        (DEFAULT_GROUP, "acme/unknown", None, True),
        (SELECTED, "acme/app", False, True),
        (SELECTED, "Acme/App", True, True),
        (SELECTED, "acme/other", True, False),
        (PRIVATE, "acme/app", True, True),
        (PRIVATE, "acme/site", False, False),
    ],
)
def test_group_visibility(
    group: groups.GroupAccess, repository: str, private: bool | None, served: bool
) -> None:
    assert (groups.refusal(group, repository=repository, private=private) is None) is served


def test_org_scope_counts_only_serviceable_demand() -> None:
    unserved = groups.unserved(
        DEFAULT_GROUP,
        repositories=["acme/app", "acme/site"],
        private={"acme/app": True, "acme/site": False},
    )
    policy = builders.policy(scopes=("org:acme",), org_scope=True, unserved=unserved)
    jobs_ = (builders.job(1, repository="acme/site"), builders.job(2, repository="acme/app"))
    plan = planner.plan(model.Snapshot(jobs=jobs_, vms=(), facts={}), policy, 0)
    assert len(starts(plan)) == 1
    reason = waiting.waiting_reason(jobs_[0], policy=policy, vms=[], now=0)
    assert reason is not None and "does not allow public repositories" in reason


# --- keep on failure ---------------------------------------------------------------------------


def test_a_kept_vm_is_not_force_stopped_before_its_keep_ends() -> None:
    stopping = dataclasses.replace(
        builders.vm(1, state=S.STOPPING, state_since=0.0),
        stop_reason=model.DeathReason.JOB_FINISHED,
    )
    kept = {1: facts.VmFacts(alive=True, job_finished=True, kept_until=600.0)}
    snap = model.Snapshot(jobs=(), vms=(stopping,), facts=kept)
    assert not [
        a for a in planner.plan(snap, builders.policy(), 100.0) if isinstance(a, act.StopVm)
    ]
    forced = [a for a in planner.plan(snap, builders.policy(), 601.0) if isinstance(a, act.StopVm)]
    assert forced and forced[0].force


# --- re-queue ----------------------------------------------------------------------------------


def test_a_requeued_job_goes_back_to_queued_only_when_its_runner_is_gone() -> None:
    assigned = dataclasses.replace(
        builders.job(1, status=J.ASSIGNED, runner_name="bm-1-abc"), vm_id=1, vm_requested_at=3.0
    )
    back = builders.job(1, status=J.QUEUED)
    assert jobs.merge(assigned, back) == assigned  # a late webhook: forward only
    requeued = jobs.merge(assigned, back, runner_gone=True)
    assert requeued.status is J.QUEUED and requeued.runner_name is None
    assert requeued.vm_id is None and requeued.vm_requested_at is None
    started = builders.job(1, status=J.IN_PROGRESS, runner_name="bm-1-abc")
    assert jobs.merge(started, back, runner_gone=True).status is J.IN_PROGRESS


def test_a_requeued_job_gets_a_vm_again() -> None:
    requeued = builders.job(1, status=J.QUEUED)
    gone = dataclasses.replace(
        builders.vm(1, state=S.GONE), ended_at=5.0, death_reason=model.DeathReason.CRASHED
    )
    snap = model.Snapshot(jobs=(requeued,), vms=(), facts={}, consumed=())
    assert gone.job_id is None
    assert len(starts(planner.plan(snap, builders.policy(), 6.0))) == 1
