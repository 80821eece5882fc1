"""The planner: ``plan(snapshot, policy, now) -> actions``. Pure; the heart of the product.

Three passes, each a small function:

1. ``lifecycle``: move each VM along the state machine from what the driver and GitHub report,
   and act on deadlines (boot, idle, stopping, pending). A busy VM is never stopped.
2. ``scale``: demand is counted per (pool, scope) because GitHub does not pin a job to a runner:
   wanted = queued matching jobs + the pool's warm minimum - VMs already pending, booting or
   idle for that key. Starts are handed out one at a time, oldest waiting job first, capped by
   ``max_vms`` and the pool's ``max_vms``. Surplus idle VMs are stopped after a grace period.
3. ``runners``: our runners that GitHub lists as offline and not busy, with no live VM, are
   deregistered.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import labels, lifecycle, model
from blacksmith_mini.domain.facts import VmFacts

S = model.VmState
SUPPLY_STATES = frozenset({S.PENDING, S.BOOTING, S.IDLE})
SURPLUS_IDLE_GRACE_SECONDS = 30.0
DemandKey = tuple[str, str]  # (pool name, scope)


def plan(snapshot: model.Snapshot, policy: model.Policy, now: float) -> list[act.Action]:
    """Decide what to do this tick. Never emits a stop for a busy VM."""
    jobs_by_runner: dict[str | None, model.Job] = {
        job.runner_name: job for job in snapshot.jobs if job.runner_name
    }
    transitions = list(_lifecycle(snapshot, policy, jobs_by_runner, now))
    moved = _apply(snapshot.vms, transitions, now)
    vms = [vm for vm in moved if vm.is_active]
    stops = list(_deadlines(vms, policy.timeouts, now))
    stopped = frozenset(stop.vm_id for stop in stops)
    linked = {name for name in jobs_by_runner if name}
    scale = list(
        _scale(
            snapshot.jobs,
            [*moved, *snapshot.consumed],  # VMs gone this tick may have run unlinked jobs
            policy,
            now,
            stopped=stopped,
            linked=linked,
            confirmed_at=snapshot.confirmed_at,
        )
    )
    cleanup = list(_runners(snapshot, vms))
    return [*transitions, *stops, *scale, *cleanup]


def _lifecycle(
    snapshot: model.Snapshot,
    policy: model.Policy,
    jobs_by_runner: dict[str | None, model.Job],
    now: float,
) -> Iterable[act.Action]:
    if snapshot.facts is None:
        return
    for vm in snapshot.vms:
        if not vm.is_active:
            continue
        yield from _observe_vm(
            vm, snapshot.facts.get(vm.vm_id), jobs_by_runner.get(vm.name), policy.timeouts, now
        )


def _observe_vm(
    vm: model.Vm,
    fact: VmFacts | None,
    job: model.Job | None,
    timeouts: model.Timeouts,
    now: float,
) -> Iterable[act.Action]:
    """Transitions implied by the driver's facts and the job GitHub says the runner took."""
    if vm.state is S.PENDING:
        if fact is not None:  # started by an attempt that was cut short before recording it
            yield act.Transition(vm_id=vm.vm_id, target=S.BOOTING, note="found running")
        elif now < vm.state_since + timeouts.pending:
            yield act.ResumeStart(vm_id=vm.vm_id)
        return
    if fact is None or not fact.alive:
        yield act.Transition(
            vm_id=vm.vm_id, target=S.GONE, reason=_exit_reason(vm, fact, job), note=_exit_note(fact)
        )
        return
    took_job = fact.job_started or (job is not None and job.status is not model.JobStatus.QUEUED)
    finished = fact.job_finished or (job is not None and job.status is model.JobStatus.COMPLETED)
    if vm.state in (S.BOOTING, S.IDLE) and took_job:
        yield act.Transition(
            vm_id=vm.vm_id, target=S.BUSY, job_id=job.id if job else None, note="runner took a job"
        )
        if finished:
            yield act.Transition(
                vm_id=vm.vm_id, target=S.STOPPING, reason=model.DeathReason.JOB_FINISHED
            )
        return
    if vm.state is S.BOOTING and fact.runner_online:
        yield act.Transition(vm_id=vm.vm_id, target=S.IDLE, note="runner online")
    elif vm.state is S.BUSY and finished:
        yield act.Transition(
            vm_id=vm.vm_id,
            target=S.STOPPING,
            reason=model.DeathReason.JOB_FINISHED,
            note="job finished; waiting for the VM to exit",
        )
    elif vm.state is S.BUSY and vm.job_id is None and job is not None:
        yield act.Transition(vm_id=vm.vm_id, target=S.BUSY, job_id=job.id, note="job linked")


def _exit_reason(vm: model.Vm, fact: VmFacts | None, job: model.Job | None) -> model.DeathReason:
    if vm.state is S.STOPPING and vm.stop_reason is not None:
        return vm.stop_reason
    if (fact is not None and fact.job_finished) or (
        job is not None and job.status is model.JobStatus.COMPLETED
    ):
        return model.DeathReason.JOB_FINISHED
    if fact is None:
        return model.DeathReason.ORPHAN if vm.state is S.STOPPING else model.DeathReason.CRASHED
    return model.DeathReason.CRASHED


def _exit_note(fact: VmFacts | None) -> str:
    if fact is None:
        return "the driver no longer knows this VM"
    return f"exited with code {fact.exit_code}" if fact.exit_code is not None else "exited"


def _apply(vms: Sequence[model.Vm], transitions: list[act.Action], now: float) -> list[model.Vm]:
    """The VMs as they will be once ``transitions`` are recorded (gone ones included)."""
    by_id = {vm.vm_id: vm for vm in vms}
    for change in transitions:
        if isinstance(change, act.Transition) and change.vm_id in by_id:
            vm = by_id[change.vm_id]
            if vm.state is change.target:
                continue
            by_id[vm.vm_id] = lifecycle.transition(
                vm, change.target, now=now, reason=change.reason, job_id=change.job_id
            )
    return list(by_id.values())


def _deadlines(
    vms: Iterable[model.Vm], timeouts: model.Timeouts, now: float
) -> Iterable[act.StopVm]:
    reasons = {
        S.PENDING: model.DeathReason.START_FAILED,
        S.BOOTING: model.DeathReason.BOOT_TIMEOUT,
        S.IDLE: model.DeathReason.IDLE_TIMEOUT,
    }
    for vm in vms:
        limit = lifecycle.deadline(vm, timeouts)
        if vm.state is S.BUSY or limit is None or now < limit:
            continue
        if vm.state is S.STOPPING:
            yield act.StopVm(
                vm_id=vm.vm_id, reason=vm.stop_reason or model.DeathReason.SCALED_DOWN, force=True
            )
            continue
        reason = reasons[vm.state]
        if vm.state is S.IDLE and now >= vm.created_at + timeouts.max_lifetime:
            reason = model.DeathReason.MAX_LIFETIME
        yield act.StopVm(vm_id=vm.vm_id, reason=reason)


def demand_key(job: model.Job, pool: model.Pool, policy: model.Policy) -> DemandKey | None:
    """The (pool, scope) whose runners can take ``job``; None when no scope serves its repo."""
    if policy.org_scope:
        return (pool.name, policy.scopes[0]) if policy.scopes else None
    repo = job.repository.lower()
    for scope in policy.scopes:
        if scope.lower() == repo:
            return (pool.name, scope)
    return None


def queued_demand(
    jobs: Iterable[model.Job], policy: model.Policy
) -> tuple[dict[DemandKey, int], dict[DemandKey, float]]:
    """Queued jobs per (pool, scope), and the oldest queued time per key."""
    cache: dict[tuple[str, ...], labels.Match] = {}
    counts: dict[DemandKey, int] = collections.Counter()
    oldest: dict[DemandKey, float] = {}
    for job in jobs:
        if job.status is not model.JobStatus.QUEUED:
            continue
        found = cache.get(job.labels)
        if found is None:
            found = cache[job.labels] = labels.match(job.labels, policy.pools)
        if found.pool is None:
            continue
        key = demand_key(job, found.pool, policy)
        if key is None:
            continue
        counts[key] += 1
        oldest[key] = min(oldest.get(key, job.created_at), job.created_at)
    return counts, oldest


def _scale(
    jobs: Sequence[model.Job],
    vms: Sequence[model.Vm],
    policy: model.Policy,
    now: float,
    *,
    stopped: frozenset[int],
    linked: set[str],
    confirmed_at: float | None,
) -> Iterable[act.Action]:
    """VMs being stopped still hold capacity until they are gone, but supply nothing.

    A busy VM whose job we do not know yet (its runner said "Running job" before GitHub's
    job status reached us) has taken one of the queued jobs of its key: it covers one. So does
    a gone VM that ran a job we never linked (``Snapshot.consumed``): its job still looks
    queued only because GitHub's news of it is late or lost. Only until a complete REST poll
    that began after the VM's last change: that poll lists what is really queued.
    """
    counts, oldest = queued_demand(jobs, policy)
    supply: dict[DemandKey, list[model.Vm]] = collections.defaultdict(list)
    active_per_pool: dict[str, int] = collections.Counter()
    unlinked: dict[DemandKey, int] = collections.Counter()
    for vm in vms:
        if _ran_unknown_job(vm, linked, confirmed_at):
            unlinked[(vm.pool, vm.scope)] += 1
        if vm.state is S.GONE:
            continue
        active_per_pool[vm.pool] += 1
        if vm.state in SUPPLY_STATES and vm.vm_id not in stopped:
            supply[(vm.pool, vm.scope)].append(vm)
    pools = {pool.name: pool for pool in policy.pools}
    wanted: dict[DemandKey, int] = {}
    keys = set(counts) | set(supply)
    for pool in policy.pools:
        keys.update((pool.name, scope) for scope in _scopes(policy) if pool.min_idle)
    for key in keys:
        found = pools.get(key[0])
        if found is None:
            continue
        held = policy.draining or found.name in policy.paused_pools
        warm = 0 if held else found.min_idle
        queued = max(0, counts.get(key, 0) - unlinked.get(key, 0))
        wanted[key] = queued + warm - len(supply.get(key, ()))
    yield from _surplus(wanted, supply, now)
    blocked = policy.paused_pools if not policy.draining else frozenset(pools)
    yield from _starts(
        wanted=wanted,
        oldest=oldest,
        pools=pools,
        blocked=blocked,
        active_total=sum(active_per_pool.values()),  # gone VMs hold no capacity
        active_per_pool=active_per_pool,
        max_vms=policy.max_vms,
    )


def _ran_unknown_job(vm: model.Vm, linked: set[str], confirmed_at: float | None) -> bool:
    """The VM's runner took a job, GitHub has not told us which one yet, and no complete poll
    has happened since (which would have shown that job as no longer queued)."""
    if vm.job_id is not None or vm.name in linked:
        return False
    last_change = vm.ended_at if vm.ended_at is not None else vm.state_since
    if confirmed_at is not None and last_change < confirmed_at:
        return False
    if vm.state is S.BUSY:
        return True
    finished = model.DeathReason.JOB_FINISHED
    after_job = vm.ran_job or finished in (vm.stop_reason, vm.death_reason)
    return vm.state in (S.STOPPING, S.GONE) and after_job


def _scopes(policy: model.Policy) -> tuple[str, ...]:
    return policy.scopes[:1] if policy.org_scope else policy.scopes


def _surplus(
    wanted: dict[DemandKey, int], supply: dict[DemandKey, list[model.Vm]], now: float
) -> Iterable[act.StopVm]:
    """Stop idle VMs nobody needs, longest idle first, once idle for a short grace."""
    for key, want in wanted.items():
        if want >= 0:
            continue
        idle = sorted(
            (vm for vm in supply.get(key, ()) if vm.state is S.IDLE),
            key=lambda vm: vm.state_since,
        )
        for vm in idle[:-want]:
            if now - vm.state_since >= SURPLUS_IDLE_GRACE_SECONDS:
                yield act.StopVm(vm_id=vm.vm_id, reason=model.DeathReason.SCALED_DOWN)


def _starts(
    *,
    wanted: dict[DemandKey, int],
    oldest: dict[DemandKey, float],
    pools: dict[str, model.Pool],
    blocked: frozenset[str],
    active_total: int,
    active_per_pool: dict[str, int],
    max_vms: int,
) -> Iterable[act.StartVm]:
    """Hand out starts one at a time, round-robin, keys with the oldest queued job first."""
    order = sorted(
        (key for key, want in wanted.items() if want > 0 and key[0] not in blocked),
        key=lambda key: (oldest.get(key, float("inf")), key),
    )
    remaining = {key: wanted[key] for key in order}
    per_pool = dict(active_per_pool)
    budget = max_vms - active_total
    while budget > 0 and remaining:
        for key in list(remaining):
            pool = pools[key[0]]
            if budget <= 0:
                break
            if per_pool.get(pool.name, 0) >= pool.max_vms:
                del remaining[key]
                continue
            yield act.StartVm(
                pool=pool.name,
                scope=key[1],
                reason="queued job" if key in oldest else "warm pool minimum",
            )
            per_pool[pool.name] = per_pool.get(pool.name, 0) + 1
            budget -= 1
            remaining[key] -= 1
            if remaining[key] <= 0:
                del remaining[key]


def _runners(snapshot: model.Snapshot, active_vms: Sequence[model.Vm]) -> Iterable[act.Action]:
    """Deregister our runners that are offline, not busy, and have no live VM."""
    if snapshot.runners is None:
        return
    live = {vm.name for vm in active_vms}
    for runner in snapshot.runners:
        if runner.busy or runner.status != "offline" or runner.name in live:
            continue
        yield act.DeregisterRunner(
            runner_id=runner.id,
            name=runner.name,
            scope=runner.scope,
            reason="offline runner with no live VM",
        )


def waiting_reason(
    job: model.Job,
    *,
    policy: model.Policy,
    vms: Sequence[model.Vm],
    now: float,
    github_note: str | None = None,
) -> str | None:
    """Why a queued job is still waiting, in words, or None when it is not queued.

    ``github_note`` says why GitHub cannot be asked for a runner right now (rate limited
    until when, unreachable since when); it explains a job that would otherwise get a VM.
    """
    if job.status is not model.JobStatus.QUEUED:
        return None
    found = labels.match(job.labels, policy.pools)
    if found.pool is None:
        return found.unmatched_reason
    pool = found.pool
    key = demand_key(job, pool, policy)
    if key is None:
        return f"repository {job.repository} is not one of the configured scopes"
    if policy.draining:
        return "the control plane is draining: no new VMs are started"
    if pool.name in policy.paused_pools:
        return f"pool '{pool.name}' is paused"
    mine = [vm for vm in vms if (vm.pool, vm.scope) == key and vm.is_active]
    idle = [vm for vm in mine if vm.state is S.IDLE]
    if idle:
        since = min(vm.state_since for vm in idle)
        return f"runner online and idle for {now - since:.0f}s; waiting for GitHub to assign it"
    booting = [vm for vm in mine if vm.state in (S.PENDING, S.BOOTING)]
    if booting:
        since = min(vm.state_since for vm in booting)
        if github_note and all(vm.state is S.PENDING for vm in booting):
            return f"VM requested {now - since:.0f}s ago; {github_note}"
        return f"VM booting for {now - since:.0f}s"
    if sum(1 for vm in vms if vm.pool == pool.name and vm.is_active) >= pool.max_vms:
        return f"pool '{pool.name}' is at its limit of {pool.max_vms} VMs"
    if sum(1 for vm in vms if vm.is_active) >= policy.max_vms:
        return f"at max_vms ({policy.max_vms}); waiting for a VM to finish"
    return github_note or "a VM will be requested on the next tick"


def with_job_stages(job: model.Job, vm: model.Vm | None) -> model.Job:
    """Fill a job's VM stage timestamps from the VM that ran it."""
    if vm is None:
        return job
    requested = job.vm_requested_at or max(vm.created_at, job.created_at)
    ready = job.vm_ready_at or (max(vm.ready_at, requested) if vm.ready_at else None)
    return dataclasses.replace(job, vm_id=vm.vm_id, vm_requested_at=requested, vm_ready_at=ready)
