"""Which failed jobs are re-run because our infrastructure failed them: tables and properties."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model, reruns
from domain import builders

D = model.DeathReason
J = model.JobStatus
NOW = 100_000.0
OPTED = dataclasses.replace(builders.DEFAULT, rerun_infrastructure_failures=True)
NOT_OPTED = dataclasses.replace(builders.LARGE, rerun_infrastructure_failures=False)


def failed_job(job_id: int = 1, **changes: Any) -> model.Job:
    job = builders.job(job_id, status=J.COMPLETED, conclusion="failure")
    values: dict[str, Any] = {
        "name": "build",
        "runner_name": f"bm-{job_id}-abc",
        "started_at": NOW - 600,
        "completed_at": NOW - 60,
    }
    return dataclasses.replace(job, **(values | changes))


def gone_vm(vm_id: int = 1, **changes: Any) -> model.Vm:
    vm = builders.vm(vm_id, state=model.VmState.GONE, pool=OPTED)
    values: dict[str, Any] = {"death_reason": D.CRASHED, "ended_at": NOW - 120}
    return dataclasses.replace(vm, **(values | changes))


def plan(
    jobs: list[model.Job],
    vms: list[model.Vm],
    *,
    already: frozenset[str] = frozenset(),
    pools: tuple[model.Pool, ...] = (OPTED, NOT_OPTED),
) -> list[act.RerunJob]:
    return reruns.plan_reruns(jobs=jobs, vms=vms, pools=pools, already=already, now=NOW)


RERUN = [
    ("the VM crashed mid-job", failed_job(), gone_vm(), D.CRASHED),
    ("its host was lost", failed_job(), gone_vm(death_reason=D.HOST_LOST), D.HOST_LOST),
    (
        "the start failed after GitHub assigned the job",
        failed_job(),
        gone_vm(death_reason=D.START_FAILED),
        D.START_FAILED,
    ),
    (
        "the boot timed out after GitHub assigned the job",
        failed_job(),
        gone_vm(death_reason=D.BOOT_TIMEOUT),
        D.BOOT_TIMEOUT,
    ),
    (
        "older runners report a shutdown as cancelled",
        failed_job(conclusion="cancelled"),
        gone_vm(),
        D.CRASHED,
    ),
    (
        "linked by the VM's own report only (GitHub named no runner)",
        failed_job(runner_name=None),
        gone_vm(job_id=1),
        D.CRASHED,
    ),
    (
        "the re-run of a job another cause failed",
        failed_job(7, run_attempt=2),
        gone_vm(7),
        D.CRASHED,
    ),
]


@pytest.mark.parametrize(("why", "job", "vm", "cause"), RERUN, ids=[row[0] for row in RERUN])
def test_a_job_our_infrastructure_failed_is_rerun_once(
    why: str, job: model.Job, vm: model.Vm, cause: model.DeathReason
) -> None:
    [rerun] = plan([job], [vm])
    assert (rerun.repository, rerun.job_id, rerun.vm_id, rerun.cause) == (
        job.repository,
        job.id,
        vm.vm_id,
        cause,
    )
    assert rerun.key == reruns.rerun_key(job)
    assert cause.value in rerun.reason and vm.name in rerun.reason
    assert plan([job], [vm], already=frozenset({rerun.key})) == []


NOT_RERUN = [
    ("the job failed on its own", failed_job(), gone_vm(death_reason=D.JOB_FINISHED)),
    ("an operator stopped it", failed_job(), gone_vm(death_reason=D.STOPPED_BY_OPERATOR)),
    ("the control plane drained", failed_job(), gone_vm(death_reason=D.SHUTDOWN)),
    ("scaled down", failed_job(), gone_vm(death_reason=D.SCALED_DOWN)),
    ("idle timeout", failed_job(), gone_vm(death_reason=D.IDLE_TIMEOUT)),
    ("max lifetime", failed_job(), gone_vm(death_reason=D.MAX_LIFETIME)),
    ("orphan", failed_job(), gone_vm(death_reason=D.ORPHAN)),
    ("the pool did not opt in", failed_job(), gone_vm(pool=NOT_OPTED.name)),
    ("the pool is no longer configured", failed_job(), gone_vm(pool="retired")),
    ("it succeeded", failed_job(conclusion="success"), gone_vm()),
    ("it timed out by its own limit", failed_job(conclusion="timed_out"), gone_vm()),
    ("it was skipped", failed_job(conclusion="skipped"), gone_vm()),
    ("it is still running", failed_job(status=J.IN_PROGRESS, conclusion=None), gone_vm()),
    ("the VM is alive", failed_job(), gone_vm(state=model.VmState.BUSY, death_reason=None)),
    (
        "a start failed for a VM GitHub never assigned it to",
        failed_job(runner_name="bm-someone-else"),
        gone_vm(death_reason=D.START_FAILED),
    ),
    ("no VM of ours ran it", failed_job(runner_name=None), gone_vm(job_id=None)),
    ("it completed more than a day ago", failed_job(completed_at=NOW - 2 * 86400), gone_vm()),
]


@pytest.mark.parametrize(("why", "job", "vm"), NOT_RERUN, ids=[row[0] for row in NOT_RERUN])
def test_jobs_that_are_not_ours_to_rerun(why: str, job: model.Job, vm: model.Vm) -> None:
    assert plan([job], [vm]) == []


def test_a_job_whose_run_still_has_open_jobs_waits_for_them() -> None:
    job, vm = failed_job(1), gone_vm(1)
    sibling = dataclasses.replace(
        failed_job(2, run_id=job.run_id, name="test"), status=J.IN_PROGRESS, conclusion=None
    )
    assert plan([job, sibling], [vm]) == []  # GitHub: 403 "This workflow is already running"
    done = dataclasses.replace(sibling, status=J.COMPLETED, conclusion="success")
    assert [r.job_id for r in plan([job, done], [vm])] == [1]


def test_once_per_job_means_once_per_chain_of_attempts() -> None:
    first, vm = failed_job(1), gone_vm(1)
    [rerun] = plan([first], [vm])
    # The re-run is a new job (new id, next attempt, same name) that crashes again.
    again = failed_job(2, run_id=first.run_id, run_attempt=2, runner_name="bm-2-abc")
    assert reruns.rerun_key(again) == rerun.key
    assert plan([first, again], [vm, gone_vm(2)], already=frozenset({rerun.key})) == []


def test_a_job_someone_already_reran_is_left_alone() -> None:
    first = failed_job(1)
    later = dataclasses.replace(
        failed_job(2, run_id=first.run_id, run_attempt=2), status=J.QUEUED, conclusion=None
    )
    assert plan([first, later], [gone_vm(1)]) == []


def test_two_vms_claiming_one_job_give_one_rerun_and_job_finished_wins() -> None:
    job = failed_job(1)
    crashed, linked = gone_vm(1), gone_vm(2, job_id=1)
    assert len(plan([job], [crashed, linked])) == 1
    finished = gone_vm(2, job_id=1, death_reason=D.JOB_FINISHED)
    assert plan([job], [crashed, finished]) == []


def test_keys_name_the_logical_job_and_fall_back_to_the_id() -> None:
    named = failed_job(1, repository="Acme/App")
    assert reruns.rerun_key(named) == f"acme/app|{named.run_id}|build"
    assert reruns.rerun_key(failed_job(5, name=None)).endswith("|#5")


def test_reruns_come_oldest_completion_first() -> None:
    jobs = [failed_job(1, completed_at=NOW - 10), failed_job(2, completed_at=NOW - 50)]
    assert [r.job_id for r in plan(jobs, [gone_vm(1), gone_vm(2)])] == [2, 1]


# --- properties ------------------------------------------------------------------------------

NAMES = ("build", "test")
INFRA = sorted(reruns.INFRASTRUCTURE) * 3


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[model.Job], list[model.Vm], frozenset[str], bool]:
    count = draw(st.integers(min_value=1, max_value=6))
    jobs, vms = [], []
    for job_id in range(1, count + 1):
        status = draw(st.sampled_from([J.COMPLETED] * 6 + list(J)))
        done = status is J.COMPLETED
        jobs.append(
            failed_job(
                job_id,
                run_id=draw(st.integers(1, 6)),
                run_attempt=draw(st.integers(1, 3)),
                name=draw(st.sampled_from(NAMES)),
                status=status,
                conclusion=draw(st.sampled_from(["failure", "cancelled", "success"]))
                if done
                else None,
                runner_name=draw(st.sampled_from([f"bm-{job_id}-abc", None])),
                completed_at=NOW - draw(st.floats(0, 1.3 * 86400)) if done else None,
            )
        )
    for vm_id in range(1, count + 2):
        gone = draw(st.sampled_from([True, True, True, False]))
        vms.append(
            gone_vm(
                vm_id,
                state=model.VmState.GONE if gone else model.VmState.BUSY,
                death_reason=draw(st.sampled_from([*INFRA, *D])) if gone else None,
                job_id=draw(st.sampled_from([None, *range(1, count + 1)])),
                pool=draw(st.sampled_from([OPTED.name, NOT_OPTED.name])),
            )
        )
    keys = [reruns.rerun_key(job) for job in jobs]
    already = frozenset(draw(st.lists(st.sampled_from(keys), max_size=3)))
    return jobs, vms, already, draw(st.booleans())


def linked(job: model.Job, vms: list[model.Vm]) -> list[model.Vm]:
    return [vm for vm in vms if vm.job_id == job.id or vm.name == job.runner_name]


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_never_twice_never_a_pool_that_did_not_opt_in_never_a_job_that_failed_itself(
    world: tuple[list[model.Job], list[model.Vm], frozenset[str], bool],
) -> None:
    jobs, vms, already, large_opted = world
    pools = (OPTED, dataclasses.replace(NOT_OPTED, rerun_infrastructure_failures=large_opted))
    opted = {pool.name for pool in pools if pool.rerun_infrastructure_failures}
    found = reruns.plan_reruns(jobs=jobs, vms=vms, pools=pools, already=already, now=NOW)
    by_id = {job.id: job for job in jobs}
    assert len({r.key for r in found}) == len(found) == len({r.job_id for r in found})
    for rerun in found:
        job = by_id[rerun.job_id]
        assert rerun.key not in already
        assert job.status is J.COMPLETED and job.conclusion in reruns.RERUN_CONCLUSIONS
        ran = linked(job, vms)
        assert ran and all(vm.death_reason is not D.JOB_FINISHED for vm in ran)
        assert all(vm.state is model.VmState.GONE for vm in ran)
        assert next(vm for vm in ran if vm.vm_id == rerun.vm_id).pool in opted
    # What was re-run is remembered: asked again, nothing is re-run twice.
    remembered = already | {r.key for r in found}
    assert reruns.plan_reruns(jobs=jobs, vms=vms, pools=pools, already=remembered, now=NOW) == []
