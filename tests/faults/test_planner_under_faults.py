"""The planner right after the loop was stalled (database locked, disk full, slow GitHub).

While the loop waits, runners finish their jobs and their VMs exit. The next tick reaps those
VMs and plans in one go, and GitHub's news of the jobs (webhooks, the next poll) has not been
folded in yet, so the jobs still look queued. A VM reaped this tick after running a job we
never linked must cover one queued job, as one reaped in an earlier tick does
(``Snapshot.consumed``); otherwise the planner starts one VM per stale job and the surplus
sits idle for the 30 s grace (seen in the ``db_locked`` fault scenario: 36 s to settle instead
of 6 s, 4 extra VMs).
"""

from __future__ import annotations

import dataclasses

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import facts, model, planner
from domain import builders

S = model.VmState
FINISHED = facts.VmFacts(
    alive=False, runner_online=True, job_started=True, job_finished=True, exit_code=0
)


def test_vms_reaped_this_tick_after_an_unlinked_job_cover_that_job() -> None:
    ran = (1, 2, 3)
    vms = tuple(builders.vm(vm_id, state=S.IDLE) for vm_id in ran)
    jobs = tuple(builders.job(job_id) for job_id in (1, 2, 3, 4))  # 1-3 ran; 4 is queued
    snapshot = model.Snapshot(jobs=jobs, vms=vms, facts=dict.fromkeys(ran, FINISHED))
    plan = planner.plan(snapshot, builders.policy(), 10.0)
    reaped = [a for a in plan if isinstance(a, act.Transition) and a.target is S.GONE]
    assert sorted(a.vm_id for a in reaped) == list(ran)
    assert all(a.reason is model.DeathReason.JOB_FINISHED for a in reaped)
    started = [a for a in plan if isinstance(a, act.StartVm)]
    assert len(started) == 1, f"{len(started)} VMs started for 1 queued job: {started}"


def test_the_same_vms_reaped_a_tick_earlier_already_cover_their_jobs() -> None:
    """The rule as it stands for VMs gone in an earlier tick (the contrast)."""
    gone = tuple(
        dataclasses.replace(
            builders.vm(vm_id, state=S.GONE),
            ran_job=True,
            ended_at=9.0,
            death_reason=model.DeathReason.JOB_FINISHED,
        )
        for vm_id in (1, 2, 3)
    )
    jobs = tuple(builders.job(job_id) for job_id in (1, 2, 3, 4))
    snapshot = model.Snapshot(jobs=jobs, vms=(), facts={}, consumed=gone)
    started = [
        a for a in planner.plan(snapshot, builders.policy(), 10.0) if isinstance(a, act.StartVm)
    ]
    assert len(started) == 1
