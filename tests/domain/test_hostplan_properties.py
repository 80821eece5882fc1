"""Many hosts in the plan, hypothesis for its promises: starts fit and go where they may,
draining hosts empty, no repository starved while another passes its share."""

from __future__ import annotations

import collections
import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import fairshare, hostplan, model, planner
from blacksmith_mini.domain import placement as pl
from blacksmith_mini.domain.hostset import HostPlan
from domain.test_hostplan import (
    ARM,
    DRAINING,
    GIB,
    LARGE,
    NOW,
    POOL,
    REPOS,
    UP,
    Counts,
    S,
    Weights,
    on,
    per_repo,
    policy,
    queued,
    snap,
    starts,
)

# --- properties ------------------------------------------------------------------------------

pick = st.sampled_from
World = tuple[model.Snapshot, model.Policy, HostPlan]


@st.composite
def worlds(draw: st.DrawFn, *, one_shape: bool = False) -> World:
    """Up to 5 hosts (any arch and state; ``one_shape``: x64 and one pool), VMs on them in
    every active state (some died this tick), queued jobs of 3 repositories, weights."""
    pools = (POOL,) if one_shape else (POOL, LARGE, ARM)
    names = [f"h{i}" for i in range(draw(st.integers(1, 5)))]
    hosts = tuple(
        pl.Host(
            name=name,
            arch="x64" if one_shape else draw(pick(["x64", "arm64"])),
            vcpus=draw(st.integers(1, 24)),
            memory_mib=GIB * draw(st.integers(2, 64)),
            disk_mib=10 * GIB * draw(st.integers(0, 12)),
            state=draw(pick(list(pl.HostState))),
        )
        for name in names
    )
    states = pick([S.BOOTING, S.IDLE, S.BUSY, S.STOPPING])
    placed = [
        on(i, draw(pick(names)), state=draw(states), repo=draw(pick(REPOS)), pool=draw(pick(pools)))
        for i in range(1, draw(st.integers(0, 14)) + 1)
    ]
    jobs = [
        queued(i, 1, draw(pick(REPOS)), pool=draw(pick(pools)).name, at=draw(st.floats(0, 500)))[0]
        for i in range(1, draw(st.integers(0, 30)) + 1)
    ]
    plan = HostPlan(
        hosts=hosts,
        strategy=draw(pick(list(pl.Strategy))),
        overcommit=pl.Overcommit(cpu=draw(pick([1.0, 1.5, 2.0])), memory=draw(pick([1.0, 1.25]))),
        vm_disk_mib=draw(pick([0, 10 * GIB])),
        weights=draw(st.dictionaries(pick(REPOS), pick([0.5, 1.0, 2.0, 3.0]))),
    )
    dead = frozenset(draw(st.sets(st.integers(1, max(1, len(placed))))))
    return snap(plan, placed, jobs, dead=dead), policy(pools=pools), plan


def active_after(snapshot: model.Snapshot, actions: list[act.Action]) -> list[model.Vm]:
    """The VMs still active once this tick's transitions are recorded."""
    gone = {a.vm_id for a in actions if isinstance(a, act.Transition) and a.target is S.GONE}
    return [vm for vm in snapshot.vms if vm.is_active and vm.vm_id not in gone]


def limited(
    ordered: list[act.StartVm], *, vms: list[model.Vm], policy: model.Policy
) -> list[act.StartVm]:
    """The first of ``ordered`` within ``max_vms`` and each pool's ``max_vms``, in order."""
    per_pool = collections.Counter(vm.pool for vm in vms)
    budget, kept = policy.max_vms - len(vms), []
    limits = {pool.name: pool.max_vms for pool in policy.pools}
    for start in ordered:
        if budget <= 0:
            break
        if per_pool[start.pool] < limits[start.pool]:
            per_pool[start.pool] += 1
            budget -= 1
            kept.append(start)
    return kept


@settings(max_examples=250, deadline=None)
@given(world=worlds())
def test_starts_fit_go_to_up_hosts_of_their_arch_and_carry_a_host(world: World) -> None:
    """(a) capacity x overcommit (disk: capacity) holds on every host given a start, counting
    the VMs still active; (b) only up hosts; (d) arch labels match; (f) each has a host."""
    snapshot, policy_, plan = world
    actions = planner.plan(snapshot, policy_, NOW)
    pools, by_name = {p.name: p for p in policy_.pools}, {h.name: h for h in plan.hosts}
    sizes = [(vm.host or "", vm.vcpus, vm.memory_mib) for vm in active_after(snapshot, actions)]
    for start in starts(actions):
        assert start.host in by_name  # (f)
        chosen, pool = by_name[start.host], pools[start.pool]
        assert chosen.state is UP  # (b)
        archs = pl.Request(vcpus=0, memory_mib=0, labels=pool.registration_labels()).archs
        assert not archs or archs == {chosen.arch}  # (d)
        sizes.append((start.host, pool.vcpus, pool.memory_mib))
    used = pl.usage_of(
        (name, pl.Reservation(vcpus=cpus, memory_mib=mib, disk_mib=plan.vm_disk_mib))
        for name, cpus, mib in sizes
    )
    for name in {start.host or "" for start in starts(actions)}:  # (a)
        assert used[name].within(pl.capacity(by_name[name], plan.overcommit)), name
    # The starts are exactly place_many's, one after another in fair order, then within
    # max_vms and the pools' limits (allocate skips the ones no host could take, for speed:
    # that must change nothing). Every start wanted: one box's, with no limit in reach.
    vms, jobs = active_after(snapshot, actions), {job.id: job for job in snapshot.jobs}
    unlimited = tuple(replace(pool, max_vms=10**6) for pool in policy_.pools)
    every = replace(policy_, max_vms=10**6, pools=unlimited)
    wanted = starts(planner.plan(replace(snapshot, hosts=None), every, NOW))
    held = hostplan.held_by_repository(vms, jobs)
    ordered = limited(
        hostplan.fair_order(wanted, held=held, jobs=jobs, weights=plan.weights),
        vms=vms,
        policy=policy_,
    )
    asks = [hostplan.request_for(pools[start.pool], plan) for start in ordered]
    used, kind = hostplan.usage(vms, plan), {"strategy": plan.strategy}
    found = pl.place_many(asks, plan.hosts, usage=used, overcommit=plan.overcommit, **kind)
    expected = [
        (s.job_id, p.host) for s, p in zip(ordered, found.placements, strict=True) if p.placed
    ]
    assert [(start.job_id, start.host) for start in starts(actions)] == expected


@settings(max_examples=250, deadline=None)
@given(world=worlds())
def test_draining_hosts_empty_of_idle_vms_and_busy_ones_are_never_stopped(world: World) -> None:
    snapshot, policy_, plan = world
    actions = planner.plan(snapshot, policy_, NOW)
    stopped = [a.vm_id for a in actions if isinstance(a, act.StopVm)]
    assert len(stopped) == len(set(stopped))  # one stop per VM
    draining = {h.name for h in plan.hosts if h.state is DRAINING}
    for vm in active_after(snapshot, actions):
        if vm.state is S.BUSY:
            assert vm.vm_id not in stopped
        elif vm.host in draining and vm.state in (S.IDLE, S.BOOTING):
            assert vm.vm_id in stopped


def assert_fair(*, held: Counts, demand: Counts, placed: Counts, weights: Weights) -> None:
    """(c), for one VM size, so a start left out means capacity is short for everyone.
    held(r): r's active VMs (its linked jobs', and unlinked ones registered in r); demand(r):
    its starts with no limit; placed(r): those made; w(r): its weight. Each start went to a
    repository whose level (held + placed before it) / w was no higher than the final level
    of any repository still short; so, against ``fairshare.fair_shares`` (wants: held +
    demand; all VMs now held shared out), while one still short ends below its share, none
    that got a start ends above its own share rounded up."""
    repos = set(held) | set(demand)
    weight = {r: weights.get(r, 1.0) for r in repos}
    ends = {r: held.get(r, 0) + placed.get(r, 0) for r in repos}
    short = [r for r in repos if placed.get(r, 0) < demand.get(r, 0)]
    for r in short:
        for s in placed:
            assert (ends[s] - 1) / weight[s] <= ends[r] / weight[r] + 1e-9, (s, r)
    wants = {r: held.get(r, 0) + demand.get(r, 0) for r in repos}
    shares = fairshare.fair_shares(wants, weight=weight, capacity=sum(ends.values()))
    if any(ends[r] < shares[r] - 1e-9 for r in short):
        for s, count in placed.items():
            assert count == 0 or ends[s] <= math.ceil(shares[s] - 1e-9), s


def held_by(snapshot: model.Snapshot, vms: list[model.Vm]) -> dict[str, int]:
    jobs = {job.id: job.repository for job in snapshot.jobs}
    return dict(collections.Counter(jobs.get(vm.job_id or 0, vm.scope) for vm in vms))


@settings(max_examples=250, deadline=None)
@given(world=worlds(one_shape=True))
def test_no_repository_is_starved_while_another_passes_its_share(world: World) -> None:
    """(c) when the hosts' room is what is short (``max_vms`` is not reached)."""
    snapshot, policy_, plan = world
    actions = planner.plan(snapshot, policy_, NOW)
    unlimited = planner.plan(replace(snapshot, hosts=None), policy_, NOW)
    held = held_by(snapshot, active_after(snapshot, actions))
    demand, placed = per_repo(starts(unlimited)), per_repo(starts(actions))
    assert_fair(held=held, demand=demand, placed=placed, weights=dict(plan.weights))


@settings(max_examples=250, deadline=None)
@given(world=worlds(one_shape=True), spare=st.integers(0, 12), pool_spare=st.integers(0, 20))
def test_allocate_is_fair_when_max_vms_or_a_pool_limit_is_short(
    world: World, spare: int, pool_spare: int
) -> None:
    """(c) when ``max_vms`` or the pool's limit binds, given the uncapped starts (the fix)."""
    snapshot, policy_, plan = world
    wanted = starts(planner.plan(replace(snapshot, hosts=None), policy_, NOW))
    vms = active_after(snapshot, planner.plan(snapshot, policy_, NOW))
    pools = {"default": replace(POOL, max_vms=len(vms) + pool_spare)}
    jobs, limit = {job.id: job for job in snapshot.jobs}, len(vms) + spare
    found = hostplan.allocate(wanted, plan=plan, vms=vms, pools=pools, jobs=jobs, max_vms=limit)
    assert len(found) <= min(spare, pool_spare)
    held, demand = held_by(snapshot, vms), per_repo(wanted)
    assert_fair(held=held, demand=demand, placed=per_repo(found), weights=dict(plan.weights))
