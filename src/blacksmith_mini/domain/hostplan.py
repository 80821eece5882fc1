"""Many hosts in the plan: which host each start goes to, fairly, and draining hosts. Pure.

``allocate`` (``allocate_wanted`` for the planner's lazy ``starts.Wanted``) takes the starts,
orders them by weighted fair share across repositories (``fairorder``: water-filling, the next
start goes to the repository holding the fewest VMs per unit of weight, ties to the oldest
waiting job), keeps them within ``max_vms`` and the pools' limits in that order when asked to,
and places them in that order (``placement.Placer``, as ``place_many`` would: room,
architecture, overcommit, spread or pack). Starts no host has room for are dropped this tick;
``placement_note`` and ``fair_share_note`` say why their jobs wait. ``drain_stops`` empties
draining hosts of their idle VMs (busy ones finish their jobs). Repositories are one whatever
their case (GitHub's ``Acme/App`` is the configuration's ``acme/app``), and a weight
that is not above 0 counts as 1, as everywhere in the plan.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Mapping, Sequence

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import fairorder, fairshare, model, placement
from blacksmith_mini.domain import starts as start_tuples
from blacksmith_mini.domain.hostset import HostPlan
from blacksmith_mini.domain.model import BOOTING, IDLE
from blacksmith_mini.domain.starts import Candidate

WARM = "(warm pool)"
ACTIVE = model.ACTIVE_VM_STATES


def request_for(pool: model.Pool, plan: HostPlan) -> placement.Request:
    return placement.Request(
        vcpus=pool.vcpus,
        memory_mib=pool.memory_mib,
        disk_mib=plan.vm_disk_mib,
        labels=pool.registration_labels(),
    )


def usage(vms: Iterable[model.Vm], plan: HostPlan) -> dict[str, placement.Reservation]:
    """What each host's active VMs reserve (counted by size: 10,000 VMs are a few sizes)."""
    sizes = collections.Counter(
        (vm.host, vm.vcpus, vm.memory_mib)
        for vm in vms
        if vm.host is not None and vm.state in ACTIVE
    )
    totals: dict[str, tuple[int, int, int]] = {}
    for (host, vcpus, memory), count in sizes.items():
        used = totals.get(host, (0, 0, 0))
        totals[host] = (used[0] + vcpus * count, used[1] + memory * count, used[2] + count)
    return {
        host: placement.Reservation(
            vcpus=vcpus, memory_mib=memory, disk_mib=plan.vm_disk_mib * count
        )
        for host, (vcpus, memory, count) in totals.items()
    }


def held_by_repository(vms: Iterable[model.Vm], jobs: Mapping[int, model.Job]) -> dict[str, int]:
    """Active VMs per repository (lower-cased): a VM counts for its job's repository, else
    for the one it is registered in; organization-scoped VMs without a job count for the
    warm pool."""
    linked: dict[str, int] = {}  # by job repository, as GitHub spells it
    unlinked: dict[str, int] = {}  # by scope, as configured
    for vm in vms:  # plain dicts: a Counter's items are 3x slower, and this is 10,000 VMs
        if vm.state in ACTIVE:
            job = jobs.get(vm.job_id) if vm.job_id is not None else None
            if job is None:
                unlinked[vm.scope] = unlinked.get(vm.scope, 0) + 1
            else:
                linked[job.repository] = linked.get(job.repository, 0) + 1
    held: dict[str, int] = collections.Counter()
    for scope, count in unlinked.items():
        held[scope.lower() if not scope.startswith("org:") else WARM] += count
    for repository, count in linked.items():
        held[repository.lower()] += count
    return dict(held)


def allocate(
    starts: Sequence[act.StartVm],
    *,
    plan: HostPlan,
    vms: Sequence[model.Vm],
    pools: Mapping[str, model.Pool],
    jobs: Mapping[int, model.Job],
    max_vms: int | None = None,
) -> list[act.StartVm]:
    """The starts that get a host this tick, each with its host, in fair-share order.

    ``max_vms`` (None: the starts are already capped): the fleet's limit, applied with the
    pools' ``max_vms`` to the fair order, so the starts that do not fit are the fairest to drop.
    """
    wanted = [start_tuples.candidate(start) for start in starts]
    held = held_by_repository(vms, jobs)
    runs, warm = fairorder.runs_of(wanted, jobs=jobs)
    order = fairorder.merge(runs, warm, held=held, weights=plan.weights)
    return _take(order, plan=plan, vms=vms, pools=pools, max_vms=max_vms)


def allocate_wanted(
    wanted: start_tuples.Wanted,
    *,
    plan: HostPlan,
    vms: Sequence[model.Vm],
    pools: Mapping[str, model.Pool],
    jobs: Mapping[int, model.Job],
    max_vms: int | None = None,
    by_scope: bool = True,
    max_starts: int = 0,
    per_pool: Mapping[str, int] | None = None,
) -> list[act.StartVm]:
    """``allocate`` of the planner's wanted starts (its uncapped round-robin). ``by_scope``:
    each key's scope is a repository (not an organization), so the repositories' runs come
    from the keys, and only the starts that get a host are ever made. ``max_starts``: the
    first that many placed starts (0: all), so the rest of the fair order is not read.
    ``per_pool``: the active VMs per pool, if the caller has counted them (None: counted)."""
    held = held_by_repository(vms, jobs)
    if by_scope:
        runs, warm = fairorder.runs_by_scope(wanted, jobs=jobs)
    else:
        runs, warm = fairorder.runs_of(wanted.round_robin(wanted.order), jobs=jobs)
    order = fairorder.merge(runs, warm, held=held, weights=plan.weights)
    return _take(
        order,
        plan=plan,
        vms=vms,
        pools=pools,
        max_vms=max_vms,
        max_starts=max_starts,
        per_pool=per_pool,
    )


def _take(
    order: Iterator[Candidate],
    *,
    plan: HostPlan,
    vms: Sequence[model.Vm],
    pools: Mapping[str, model.Pool],
    max_vms: int | None,
    max_starts: int = 0,
    per_pool: Mapping[str, int] | None = None,
) -> list[act.StartVm]:
    """The first ``max_starts`` (0: all) starts of ``order`` within the limits, each placed
    in turn (``placement.Placer``: as ``place_many`` would), made actions. A size that found
    no host finds none later in the tick (room only shrinks), so its further starts are
    skipped, and once no size has room the rest of ``order`` is not read: thousands of
    unplaceable starts cost nothing."""
    if max_vms is not None:
        order = within_limits(order, vms=vms, pools=pools, max_vms=max_vms, per_pool=per_pool)
    requests = {name: request_for(pool, plan) for name, pool in pools.items()}
    same_size: dict[placement.Request, set[str]] = collections.defaultdict(set)
    for name, request in requests.items():
        same_size[request].add(name)
    placer = placement.Placer(
        plan.hosts, usage=usage(vms, plan), strategy=plan.strategy, overcommit=plan.overcommit
    )
    roomy, taken = set(requests), list[act.StartVm]()
    for found in order:
        if not roomy or 0 < max_starts == len(taken):
            break
        if found[0] not in roomy:
            continue
        request = requests[found[0]]
        host = placer.host_for(request)
        if host is None:
            roomy -= same_size[request]
        else:
            taken.append(start_tuples.action(found, host=host))
    return taken


def within_limits(
    ordered: Iterable[Candidate],
    *,
    vms: Sequence[model.Vm],
    pools: Mapping[str, model.Pool],
    max_vms: int,
    per_pool: Mapping[str, int] | None = None,
) -> Iterator[Candidate]:
    """The first of ``ordered`` that keep the active VMs within ``max_vms`` and each pool's
    (``per_pool``: the active VMs per pool, if counted already)."""
    if per_pool is None:
        per_pool = collections.Counter(vm.pool for vm in vms if vm.state in ACTIVE)
    held = dict(per_pool)
    budget = max_vms - sum(held.values())
    for found in ordered:
        if budget <= 0:
            return
        pool = found[0]
        if held.get(pool, 0) >= pools[pool].max_vms:
            continue
        held[pool] = held.get(pool, 0) + 1
        budget -= 1
        yield found


def fair_order(
    starts: Sequence[act.StartVm],
    *,
    held: Mapping[str, int],
    jobs: Mapping[int, model.Job],
    weights: Mapping[str, float],
) -> list[act.StartVm]:
    """``starts`` reordered by weighted water-filling over repositories (warm-pool starts,
    which serve no queued job, last); each repository's own starts keep their order."""
    wanted = [start_tuples.candidate(start) for start in starts]
    runs, warm = fairorder.runs_of(wanted, jobs=jobs)
    order = fairorder.merge(runs, warm, held=held, weights=weights)
    return [start_tuples.action(found) for found in order]


def drain_stops(vms: Iterable[model.Vm], plan: HostPlan) -> list[act.StopVm]:
    """Idle or booting VMs on draining hosts: stopped so the host empties (not busy ones)."""
    draining = {host.name for host in plan.hosts if host.state is placement.HostState.DRAINING}
    return [
        act.StopVm(vm_id=vm.vm_id, reason=model.DeathReason.SCALED_DOWN)
        for vm in vms
        if vm.host in draining and vm.state in (IDLE, BOOTING)
    ]


def placement_note(pool: model.Pool, *, plan: HostPlan, vms: Sequence[model.Vm]) -> str | None:
    """Why no host takes a VM of ``pool`` now ("no host has 16 GiB free"), or None."""
    return placement_notes([pool], plan=plan, vms=vms).get(pool.name)


def placement_notes(
    pools: Iterable[model.Pool], *, plan: HostPlan, vms: Sequence[model.Vm]
) -> dict[str, str]:
    """``placement_note`` of every pool no host takes a VM of now (the usage counted once)."""
    used = usage(vms, plan)
    found: dict[str, str] = {}
    for pool in pools:
        placed = placement.place(
            request_for(pool, plan),
            plan.hosts,
            usage=used,
            strategy=plan.strategy,
            overcommit=plan.overcommit,
        )
        if not placed.placed:
            found[pool.name] = placed.reason or "no host takes it"
    return found


def fair_share_note(
    repository: str,
    *,
    queued: Mapping[str, int],
    vms: Sequence[model.Vm],
    jobs: Mapping[int, model.Job],
    weights: Mapping[str, float],
) -> str | None:
    """ "fair share: acme/app holds 12 of 20 VMs (its share is 10)": what ``repository``
    holds of all VMs against its weighted fair share (``fairshare.fair_shares`` of the VMs
    held, each repository wanting what it holds plus its queued jobs), for a job that waits
    for room; None when no other repository holds a VM (fairness is not why it waits)."""
    notes = fair_share_notes([repository], queued=queued, vms=vms, jobs=jobs, weights=weights)
    return notes.get(repository)


def fair_share_notes(
    repositories: Iterable[str],
    *,
    queued: Mapping[str, int],
    vms: Sequence[model.Vm],
    jobs: Mapping[int, model.Job],
    weights: Mapping[str, float],
) -> dict[str, str]:
    """``fair_share_note`` of each of ``repositories`` that has one (the VMs counted once)."""
    held = held_by_repository(vms, jobs)
    waiting: dict[str, int] = collections.Counter()
    for repo, count in queued.items():
        waiting[repo.lower()] += max(0, count)
    demands = [
        fairshare.Demand(repository=repo, queued=count, oldest=0.0)
        for repo, count in waiting.items()
        if count > 0
    ]
    weight = fairorder.lowered_weights(weights)
    shared = fairshare.share(demands, held=held, available=0, weights=weight)
    total = sum(held.values())
    found: dict[str, str] = {}
    for repository in repositories:
        key = repository.lower()
        if held.get(key, 0) >= total:  # no other repository holds a VM
            continue
        fair = f"{shared.shares.get(key, 0.0):.1f}".removesuffix(".0")
        found[repository] = (
            f"fair share: {repository} holds {held.get(key, 0)} of {total} VMs "
            f"(its share is {fair})"
        )
    return found
