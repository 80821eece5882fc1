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

from collections.abc import Iterable, Mapping, Sequence

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import deadlines, hostplan, lifecycle, model, starts
from blacksmith_mini.domain.demand import DemandKey, demand_key, queued_demand
from blacksmith_mini.domain.facts import VmFacts
from blacksmith_mini.domain.model import (
    BOOTING,
    BUSY,
    COMPLETED,
    GONE,
    IDLE,
    PENDING,
    QUEUED,
    STOPPING,
)
from blacksmith_mini.domain.queuebook import QueueBook, fit
from blacksmith_mini.domain.waiting import waiting_reason, with_job_stages

SUPPLY_STATES = frozenset({PENDING, BOOTING, IDLE})
ACTIVE = model.ACTIVE_VM_STATES
AFTER_A_JOB = frozenset({BUSY, STOPPING, GONE})  # the states that may cover an unlinked job
SURPLUS_IDLE_GRACE_SECONDS = 30.0
__all__ = ["DemandKey", "demand_key", "plan", "queued_demand", "waiting_reason", "with_job_stages"]


def plan(
    snapshot: model.Snapshot,
    policy: model.Policy,
    now: float,
    *,
    queue: QueueBook | None = None,
) -> list[act.Action]:
    """Decide what to do this tick. Never emits a stop for a busy VM. ``queue``: the queued
    side of ``snapshot.jobs``, kept by the loop between ticks (None: worked out here)."""
    jobs_by_runner: dict[str | None, model.Job] = {
        job.runner_name: job for job in snapshot.jobs if job.runner_name
    }
    transitions = list(_lifecycle(snapshot, policy, jobs_by_runner, now))
    moved = _apply(snapshot.vms, transitions, now)
    vms = [vm for vm in moved if vm.state in ACTIVE]
    stops = deadlines.overdue_stops(vms, policy.timeouts, now, facts=snapshot.facts or {})
    stops.extend(_requested_stops(vms, policy, skip={stop.vm_id for stop in stops}))
    stopped = frozenset(stop.vm_id for stop in stops)
    linked = {name for name in jobs_by_runner if name}
    surplus, wanted, active_per_pool = _scale(
        snapshot.jobs,
        [*moved, *snapshot.consumed],  # VMs gone this tick may have run unlinked jobs
        policy,
        now,
        stopped=stopped,
        linked=linked,
        lag_allowance=snapshot.lag_allowance,
        backoff=snapshot.backoff,
        queue=queue,
    )
    if snapshot.hosts is None:
        budget = policy.max_vms - sum(active_per_pool.values())
        if policy.max_starts_per_tick > 0:
            budget = min(budget, policy.max_starts_per_tick)
        pools = {pool.name: pool for pool in policy.pools}
        found = wanted.candidates(pools=pools, budget=budget, active_per_pool=active_per_pool)
        scale: list[act.Action] = [*surplus, *(starts.action(start) for start in found)]
    else:  # many hosts: every wanted start, limited in fair order, placed
        scale = _on_hosts(
            surplus, wanted, snapshot, policy, vms, skip=stopped, per_pool=active_per_pool
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
        if vm.state not in ACTIVE:
            continue
        fact, job = snapshot.facts.get(vm.vm_id), jobs_by_runner.get(vm.name)
        if fact is not None and fact.alive and _as_before(vm, fact, job):
            continue  # most VMs, most ticks: spared a generator each
        yield from _observe_vm(
            vm, fact, job, policy.timeouts, now, held=snapshot.backoff.get(vm.pool)
        )


def _as_before(vm: model.Vm, fact: VmFacts, job: model.Job | None) -> bool:
    """A live VM ``_observe_vm`` has nothing to say of (pending ones always go there): no job
    taken by an idle or booting one, no online runner for a booting one, no finished job
    for a busy one, and a busy one already linked to the job GitHub names."""
    state, queued = vm.state, job is None or job.status is QUEUED
    if state is STOPPING:
        return True
    if state is IDLE:
        return queued and not fact.job_started
    if state is BOOTING:
        return queued and not fact.job_started and not fact.runner_online
    if state is BUSY and not fact.job_finished:
        return job is None or (vm.job_id is not None and job.status is not COMPLETED)
    return False


def _observe_vm(
    vm: model.Vm,
    fact: VmFacts | None,
    job: model.Job | None,
    timeouts: model.Timeouts,
    now: float,
    *,
    held: pool_backoff.PoolBackoff | None = None,
) -> Iterable[act.Action]:
    """Transitions implied by the driver's facts and the job GitHub says the runner took.

    "Busy" comes from the VM's own report or from GitHub naming the VM's runner on a job;
    nothing here concludes "idle" from GitHub, whose ``busy`` flag and job status lag.
    """
    if vm.state is PENDING:
        if fact is not None:  # started by an attempt that was cut short before recording it
            yield act.Transition(vm_id=vm.vm_id, target=BOOTING, note="found running")
        elif now < vm.state_since + timeouts.pending and not (held and held.blocks(now)):
            yield act.ResumeStart(vm_id=vm.vm_id)
        return
    if fact is None or not fact.alive:
        yield act.Transition(
            vm_id=vm.vm_id, target=GONE, reason=_exit_reason(vm, fact, job), note=_exit_note(fact)
        )
        return
    took_job = fact.job_started or (job is not None and job.status is not QUEUED)
    finished = fact.job_finished or (job is not None and job.status is COMPLETED)
    if vm.state in (BOOTING, IDLE) and took_job:
        yield act.Transition(
            vm_id=vm.vm_id, target=BUSY, job_id=job.id if job else None, note="runner took a job"
        )
        if finished:
            yield act.Transition(
                vm_id=vm.vm_id, target=STOPPING, reason=model.DeathReason.JOB_FINISHED
            )
        return
    if vm.state is BOOTING and fact.runner_online:
        yield act.Transition(vm_id=vm.vm_id, target=IDLE, note="runner online")
    elif vm.state is BUSY and finished:
        yield act.Transition(
            vm_id=vm.vm_id,
            target=STOPPING,
            reason=model.DeathReason.JOB_FINISHED,
            note="job finished; waiting for the VM to exit",
        )
    elif vm.state is BUSY and vm.job_id is None and job is not None:
        yield act.Transition(vm_id=vm.vm_id, target=BUSY, job_id=job.id, note="job linked")


def _exit_reason(vm: model.Vm, fact: VmFacts | None, job: model.Job | None) -> model.DeathReason:
    if fact is not None and fact.host_lost:
        return model.DeathReason.HOST_LOST
    if vm.state is STOPPING and vm.stop_reason is not None:
        return vm.stop_reason
    if (fact is not None and fact.job_finished) or (job is not None and job.status is COMPLETED):
        return model.DeathReason.JOB_FINISHED
    if fact is None:
        return model.DeathReason.ORPHAN if vm.state is STOPPING else model.DeathReason.CRASHED
    return model.DeathReason.CRASHED


def _exit_note(fact: VmFacts | None) -> str:
    if fact is None:
        return "the driver no longer knows this VM"
    if fact.host_lost:
        return "its host was lost (no heartbeat within the lease): written off"
    return f"exited with code {fact.exit_code}" if fact.exit_code is not None else "exited"


def _apply(vms: Sequence[model.Vm], transitions: list[act.Action], now: float) -> list[model.Vm]:
    """The VMs as they will be once ``transitions`` are recorded (gone ones included)."""
    if not transitions:  # most ticks at scale: no copy of 10,000 VMs by id
        return list(vms)
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


def _scale(
    jobs: Sequence[model.Job],
    vms: Sequence[model.Vm],
    policy: model.Policy,
    now: float,
    *,
    stopped: frozenset[int],
    linked: set[str],
    lag_allowance: float,
    backoff: Mapping[str, pool_backoff.PoolBackoff],
    queue: QueueBook | None = None,
) -> tuple[list[act.StopVm], starts.Wanted, dict[str, int]]:
    """Surplus idle VMs' stops, and the starts wanted (all of them when not ``capped``).

    VMs being stopped still hold capacity until they are gone, but supply nothing.

    A busy VM whose job we do not know yet (its runner said "Running job" before GitHub's
    job status reached us) has taken one of the queued jobs of its key: it covers one. So does
    a gone VM that ran a job we never linked (``Snapshot.consumed``): its job still looks
    queued only because GitHub's news of it is late or lost. GitHub's job status lags the
    runner by tens of seconds, even in its REST answers, so the cover lasts until GitHub names
    the job the VM ran (the VM is then linked) or ``lag_allowance`` seconds have passed.
    Pools whose starts keep failing get no start before their back-off ends.
    """
    kept = queue is not None and queue.fitted == fit(policy)  # not one kept for another policy
    book = queue if kept and queue is not None else QueueBook.of(jobs, policy)
    counts, oldest = book.counts(), book.oldest()
    # Plain dicts: a Counter's or defaultdict's items are 3x slower, and this is 10,000 VMs.
    supply: dict[DemandKey, list[model.Vm]] = {}
    active_per_pool: dict[str, int] = {}
    unlinked: dict[DemandKey, int] = {}
    for vm in vms:
        state, pool_name = vm.state, vm.pool
        if state in AFTER_A_JOB and _ran_unknown_job(
            vm, linked, now=now, lag_allowance=lag_allowance
        ):
            key = (pool_name, vm.scope)
            unlinked[key] = unlinked.get(key, 0) + 1
        if state is GONE:
            continue
        active_per_pool[pool_name] = active_per_pool.get(pool_name, 0) + 1
        if state in SUPPLY_STATES and vm.vm_id not in stopped:
            supply.setdefault((pool_name, vm.scope), []).append(vm)
    pools = {pool.name: pool for pool in policy.pools}
    wanted: dict[DemandKey, int] = {}
    keys = set(counts) | set(supply)
    for pool in policy.pools:
        keys.update((pool.name, scope) for scope in _scopes(policy) if pool.warm)
    for key in keys:
        found = pools.get(key[0])
        if found is None:
            continue
        held = policy.draining or found.name in policy.paused_pools
        warm = 0 if held else found.warm
        queued = max(0, counts.get(key, 0) - unlinked.get(key, 0))
        wanted[key] = queued + warm - len(supply.get(key, ()))
    surplus = list(_surplus(wanted, supply, now))
    blocked = policy.paused_pools if not policy.draining else frozenset(pools)
    blocked |= frozenset(name for name, held in backoff.items() if held.blocks(now))
    found_starts = starts.wanted_starts(
        wanted=wanted, oldest=oldest, unstamped=book.unstamped(), blocked=blocked
    )
    return surplus, found_starts, active_per_pool  # gone VMs hold no capacity


def _on_hosts(
    surplus: list[act.StopVm],
    wanted: starts.Wanted,
    snapshot: model.Snapshot,
    policy: model.Policy,
    vms: Sequence[model.Vm],
    *,
    skip: frozenset[int],
    per_pool: Mapping[str, int],
) -> list[act.Action]:
    """Many hosts: starts get a host (fairly, where there is room); draining hosts empty."""
    assert snapshot.hosts is not None
    kept: list[act.Action] = list(surplus)
    stopping = skip | {stop.vm_id for stop in surplus}
    kept.extend(s for s in hostplan.drain_stops(vms, snapshot.hosts) if s.vm_id not in stopping)
    jobs = {job.id: job for job in snapshot.jobs}
    pools = {pool.name: pool for pool in policy.pools}
    placed = hostplan.allocate_wanted(
        wanted,
        plan=snapshot.hosts,
        vms=vms,
        pools=pools,
        jobs=jobs,
        max_vms=policy.max_vms,
        by_scope=not policy.org_scope,
        max_starts=policy.max_starts_per_tick,
        per_pool=per_pool,
    )
    return [*kept, *placed]


def _ran_unknown_job(vm: model.Vm, linked: set[str], *, now: float, lag_allowance: float) -> bool:
    """The VM's runner took a job, GitHub has not told us which one yet, and it has not been
    ``lag_allowance`` seconds since the VM's last change (GitHub would have said by then)."""
    if vm.job_id is not None or vm.name in linked:
        return False
    last_change = vm.ended_at if vm.ended_at is not None else vm.state_since
    if now - last_change >= lag_allowance:
        return False
    if vm.state is BUSY:
        return True
    finished = model.DeathReason.JOB_FINISHED
    after_job = vm.ran_job or finished in (vm.stop_reason, vm.death_reason)
    return vm.state in (STOPPING, GONE) and after_job


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
            (vm for vm in supply.get(key, ()) if vm.state is IDLE),
            key=lambda vm: vm.state_since,
        )
        for vm in idle[:-want]:
            if now - vm.state_since >= SURPLUS_IDLE_GRACE_SECONDS:
                yield act.StopVm(vm_id=vm.vm_id, reason=model.DeathReason.SCALED_DOWN)


def _requested_stops(
    vms: Iterable[model.Vm], policy: model.Policy, *, skip: set[int]
) -> Iterable[act.StopVm]:
    """Operators' persisted stop requests. A busy VM is stopped only if the request forces it
    (the operator accepted that its job fails); a stopping one is hurried only if forced."""
    if not policy.stop_requests:
        return
    for vm in vms:
        force = policy.stop_requests.get(vm.vm_id)
        if force is None or vm.vm_id in skip:
            continue
        if vm.state in (BUSY, STOPPING) and not force:
            continue
        yield act.StopVm(vm_id=vm.vm_id, reason=model.DeathReason.STOPPED_BY_OPERATOR, force=force)


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
