"""Which failed jobs to re-run because our infrastructure failed them, not their own steps.

Pure: the control loop passes the jobs it knows (open and recently completed), the VMs (gone
ones carry their ``DeathReason``), the pools and the re-runs already made (persisted by
``control/reruns.py``), and performs the ``RerunJob``s returned. A job is re-run when:

- it completed with a conclusion GitHub gives a job whose runner vanished under it:
  ``failure`` (a runner that received a shutdown signal reports the job failed since
  actions/runner PR #1792, and the service fails a job whose runner lost communication) or
  ``cancelled`` (what runners reported before that change): which one a given runner version
  and GitHub give is UNCONFIRMED, so both count;
- GitHub assigned it to one of our VMs (it named the VM's runner, or we linked the VM to it);
- every such VM is gone, and with an infrastructure reason (``INFRASTRUCTURE``: host lost,
  crashed, or a start or boot that failed after the job was assigned). A VM that ended
  ``job_finished`` means the job failed on its own: never re-run. Our own decisions (an
  operator's stop, scale-down, a draining shutdown) are not failures either;
- the VM's pool opted in (``Pool.rerun_infrastructure_failures``);
- no other job of its run is still open: GitHub refuses to re-run a job while its run is in
  progress (403 "This workflow is already running"), so it waits for its siblings;
- no later attempt of it is known (someone, or an earlier answer we did not get, re-ran it);
- it completed within ``max_age`` (a day), so a re-run record, kept a week, is never needed
  after it is pruned;
- its key is not in ``already``.

"Once per job" means once per *logical* job: the key (``rerun_key``) is the repository, the run
and the job's name, the same for every attempt. A re-run is a new job (new id, next
``run_attempt``, same name); if our infrastructure fails that one too, it is not re-run again:
two infrastructure failures in a row are for a person to look at, not for a loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model

D = model.DeathReason
INFRASTRUCTURE: frozenset[model.DeathReason] = frozenset(
    {D.HOST_LOST, D.CRASHED, D.START_FAILED, D.BOOT_TIMEOUT}
)
RERUN_CONCLUSIONS = frozenset({"failure", "cancelled"})
MAX_AGE_SECONDS = 86400.0


def rerun_key(job: model.Job) -> str:
    """The logical job across attempts: ``repository|run id|job name`` (``#id`` if unnamed)."""
    name = job.name or f"#{job.id}"
    return f"{job.repository.lower()}|{job.run_id}|{name}"


def plan_reruns(
    *,
    jobs: Iterable[model.Job],
    vms: Iterable[model.Vm],
    pools: Iterable[model.Pool],
    already: AbstractSet[str],
    now: float,
    max_age: float = MAX_AGE_SECONDS,
) -> list[act.RerunJob]:
    """The re-runs to ask GitHub for, the oldest completion first (see the module's rules)."""
    known = list(jobs)
    machines = list(vms)
    opted = {pool.name for pool in pools if pool.rerun_infrastructure_failures}
    found: dict[str, act.RerunJob] = {}
    candidates = sorted(known, key=lambda job: (job.completed_at or 0.0, job.id))
    for job in candidates:
        key = rerun_key(job)
        if key in already or key in found or not _failed_recently(job, now=now, max_age=max_age):
            continue
        if _run_still_open(job, known) or _rerun_already(job, known, key=key):
            continue
        vm = _infrastructure_failure(job, machines)
        if vm is None or vm.pool not in opted or vm.death_reason is None:
            continue
        found[key] = act.RerunJob(
            repository=job.repository,
            job_id=job.id,
            reason=(
                f"{vm.death_reason.value}: VM {vm.vm_id} ({vm.name}) in pool {vm.pool} ended "
                f"under the job (attempt {job.run_attempt}, conclusion {job.conclusion})"
            ),
            key=key,
            vm_id=vm.vm_id,
            cause=vm.death_reason,
        )
    return list(found.values())


def _failed_recently(job: model.Job, *, now: float, max_age: float) -> bool:
    return (
        job.status is model.JobStatus.COMPLETED
        and job.conclusion in RERUN_CONCLUSIONS
        and job.completed_at is not None
        and job.completed_at >= now - max_age
    )


def _run_still_open(job: model.Job, jobs: Sequence[model.Job]) -> bool:
    return any(
        other.is_open and other.id != job.id and (other.repository, other.run_id) == _run(job)
        for other in jobs
    )


def _run(job: model.Job) -> tuple[str, int]:
    return job.repository, job.run_id


def _rerun_already(job: model.Job, jobs: Sequence[model.Job], *, key: str) -> bool:
    return any(other.run_attempt > job.run_attempt and rerun_key(other) == key for other in jobs)


def _infrastructure_failure(job: model.Job, vms: Sequence[model.Vm]) -> model.Vm | None:
    """The gone VM of ours the job was assigned to, if every such VM ended for our reasons."""
    ran = [
        vm
        for vm in vms
        if vm.job_id == job.id or (job.runner_name is not None and vm.name == job.runner_name)
    ]
    if not ran or any(vm.state is not model.VmState.GONE for vm in ran):
        return None
    if any(vm.death_reason not in INFRASTRUCTURE for vm in ran):
        return None
    return min(ran, key=lambda vm: vm.vm_id)
