"""Many hosts in the plan: which host each start goes to, fairly, and draining hosts. Pure.

``allocate`` takes the planner's starts, orders them by weighted fair share across
repositories (water-filling: the next start goes to the repository holding the fewest VMs per
unit of weight, ties to the oldest waiting job), keeps them within ``max_vms`` and the pools'
limits in that order when asked to, and places them in that order (``placement.place_many``:
room, architecture, overcommit, spread or pack). Starts no host has room for are dropped this
tick; ``placement_note`` and ``fair_share_note`` say why their jobs wait. ``drain_stops``
empties draining hosts of their idle VMs (busy ones finish their jobs). Repositories are one
whatever their case (GitHub's ``Acme/App`` is the configuration's ``acme/app``), and a weight
that is not above 0 counts as 1, as everywhere in the plan.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import fairshare, model, placement
from blacksmith_mini.domain.hostset import HostPlan

S = model.VmState
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
    linked: dict[str, int] = collections.Counter()  # by job repository, as GitHub spells it
    unlinked: dict[str, int] = collections.Counter()  # by scope, as configured
    for vm in vms:
        if vm.state in ACTIVE:
            job = jobs.get(vm.job_id) if vm.job_id is not None else None
            if job is None:
                unlinked[vm.scope] += 1
            else:
                linked[job.repository] += 1
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
    if not starts:
        return []
    ordered = fair_order(
        starts, held=held_by_repository(vms, jobs), jobs=jobs, weights=plan.weights
    )
    if max_vms is not None:
        ordered = within_limits(ordered, vms=vms, pools=pools, max_vms=max_vms)
    requests = {name: request_for(pool, plan) for name, pool in pools.items()}
    used = usage(vms, plan)
    ordered = within_room(ordered, requests=requests, plan=plan, used=used)
    batch = placement.place_many(
        (requests[start.pool] for start in ordered),
        plan.hosts,
        usage=used,
        strategy=plan.strategy,
        overcommit=plan.overcommit,
    )
    return [
        dataclasses.replace(start, host=placed.host)
        for start, placed in zip(ordered, batch.placements, strict=True)
        if placed.placed
    ]


def within_limits(
    ordered: Sequence[act.StartVm],
    *,
    vms: Sequence[model.Vm],
    pools: Mapping[str, model.Pool],
    max_vms: int,
) -> list[act.StartVm]:
    """The first of ``ordered`` that keep the active VMs within ``max_vms`` and each pool's."""
    active = [vm for vm in vms if vm.is_active]
    per_pool: dict[str, int] = collections.Counter(vm.pool for vm in active)
    budget = max_vms - len(active)
    kept: list[act.StartVm] = []
    for start in ordered:
        if budget <= 0:
            break
        if per_pool[start.pool] >= pools[start.pool].max_vms:
            continue
        per_pool[start.pool] += 1
        budget -= 1
        kept.append(start)
    return kept


def within_room(
    ordered: Sequence[act.StartVm],
    *,
    requests: Mapping[str, placement.Request],
    plan: HostPlan,
    used: Mapping[str, placement.Reservation],
) -> list[act.StartVm]:
    """``ordered`` less the starts no host could take even if they were the only ones of their
    size: placing them changes nothing (a size's placed starts are its first ones in order,
    as room only shrinks), and it spares ``place_many`` the thousands that would fail."""
    same: dict[placement.Request, str] = {}  # pools of one size share its room
    size_of = {pool: same.setdefault(request, pool) for pool, request in requests.items()}
    room = {
        pool: sum(_fits(requests[pool], host, plan=plan, used=used) for host in plan.hosts)
        for pool in same.values()
    }
    kept: list[act.StartVm] = []
    for start in ordered:
        size = size_of[start.pool]
        if room[size] > 0:
            room[size] -= 1
            kept.append(start)
    return kept


def _fits(
    request: placement.Request,
    host: placement.Host,
    *,
    plan: HostPlan,
    used: Mapping[str, placement.Reservation],
) -> int:
    """How many VMs of ``request``'s size fit on ``host`` alone (up and of its architecture)."""
    arch = placement.ARCH_LABELS.get(host.arch.strip().lower(), host.arch.strip().lower())
    wanted = request.archs
    if host.state is not placement.HostState.UP or (wanted and arch not in wanted):
        return 0
    if request.driver is not None and request.driver not in host.drivers:
        return 0
    cap, held = placement.capacity(host, plan.overcommit), used.get(host.name, placement.EMPTY)
    counts = [
        (free // size) if size > 0 else (1 << 30) if free >= 0 else 0
        for free, size in (
            (cap.vcpus - held.vcpus, request.vcpus),
            (cap.memory_mib - held.memory_mib, request.memory_mib),
            (cap.disk_mib - held.disk_mib, request.disk_mib),
        )
    ]
    return max(0, min(counts))


def fair_order(
    starts: Sequence[act.StartVm],
    *,
    held: Mapping[str, int],
    jobs: Mapping[int, model.Job],
    weights: Mapping[str, float],
) -> list[act.StartVm]:
    """``starts`` reordered by weighted water-filling over repositories (warm-pool starts,
    which serve no queued job, last); each repository's own starts keep their order."""
    per_repo: dict[str, list[act.StartVm]] = collections.defaultdict(list)
    oldest: dict[str, float] = {}
    lowered: dict[str, str] = {}
    warm: list[act.StartVm] = []
    for start in starts:
        job = jobs.get(start.job_id) if start.job_id is not None else None
        if job is None and start.reason != "queued job":
            warm.append(start)
            continue
        name = job.repository if job is not None else start.scope
        repo = lowered.get(name) or lowered.setdefault(name, name.lower())
        per_repo[repo].append(start)
        if job is not None and job.created_at < oldest.get(repo, float("inf")):
            oldest[repo] = job.created_at
    # A repository's k-th start comes at level (held + k) / weight; all starts sorted by
    # (level, oldest job, repository) is the water-filling order (each repository's levels rise).
    weight = lowered_weights(weights)
    keyed = [
        ((held.get(repo, 0) + k) / weight.get(repo, 1.0), oldest.get(repo, float("inf")), repo, k)
        for repo, mine in per_repo.items()
        for k in range(len(mine))
    ]
    keyed.sort()
    ordered = [per_repo[repo][k] for _, _, repo, k in keyed]
    return ordered + warm


def lowered_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """The weights by lower-cased repository; one not above 0 counts as 1 (the default)."""
    return {repo.lower(): value if value > 0 else 1.0 for repo, value in weights.items()}


def drain_stops(vms: Iterable[model.Vm], plan: HostPlan) -> list[act.StopVm]:
    """Idle or booting VMs on draining hosts: stopped so the host empties (not busy ones)."""
    draining = {host.name for host in plan.hosts if host.state is placement.HostState.DRAINING}
    return [
        act.StopVm(vm_id=vm.vm_id, reason=model.DeathReason.SCALED_DOWN)
        for vm in vms
        if vm.host in draining and vm.state in (S.IDLE, S.BOOTING)
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
    shared = fairshare.share(demands, held=held, available=0, weights=lowered_weights(weights))
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
