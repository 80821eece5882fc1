"""Many hosts in the plan: which host each start goes to, fairly, and draining hosts. Pure.

``allocate`` takes the planner's starts (already capped by ``max_vms`` and the pools' limits),
orders them by weighted fair share across repositories (water-filling: the next start goes to
the repository holding the fewest VMs per unit of weight, ties to the oldest waiting job) and
places them in that order (``placement.place_many``: room, architecture, overcommit, spread or
pack). Starts no host has room for are dropped this tick; ``placement_note`` and
``fair_share_note`` say why their jobs wait. ``drain_stops`` empties draining hosts of their
idle VMs (busy ones finish their jobs).
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
from collections.abc import Iterable, Mapping, Sequence

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import fairshare, model, placement
from blacksmith_mini.domain.hostset import HostPlan

S = model.VmState
WARM = "(warm pool)"


def request_for(pool: model.Pool, plan: HostPlan) -> placement.Request:
    return placement.Request(
        vcpus=pool.vcpus,
        memory_mib=pool.memory_mib,
        disk_mib=plan.vm_disk_mib,
        labels=pool.registration_labels(),
    )


def usage(vms: Iterable[model.Vm], plan: HostPlan) -> dict[str, placement.Reservation]:
    """What each host's active VMs reserve."""
    return placement.usage_of(
        (
            vm.host,
            placement.Reservation(
                vcpus=vm.vcpus, memory_mib=vm.memory_mib, disk_mib=plan.vm_disk_mib
            ),
        )
        for vm in vms
        if vm.is_active and vm.host is not None
    )


def repository_of(vm: model.Vm, jobs: Mapping[int, model.Job]) -> str:
    job = jobs.get(vm.job_id) if vm.job_id is not None else None
    if job is not None:
        return job.repository
    return vm.scope if not vm.scope.startswith("org:") else WARM


def held_by_repository(vms: Iterable[model.Vm], jobs: Mapping[int, model.Job]) -> dict[str, int]:
    held: dict[str, int] = collections.Counter()
    for vm in vms:
        if vm.is_active:
            held[repository_of(vm, jobs)] += 1
    return dict(held)


def allocate(
    starts: Sequence[act.StartVm],
    *,
    plan: HostPlan,
    vms: Sequence[model.Vm],
    pools: Mapping[str, model.Pool],
    jobs: Mapping[int, model.Job],
) -> list[act.StartVm]:
    """The starts that get a host this tick, each with its host, in fair-share order."""
    if not starts:
        return []
    ordered = fair_order(
        starts, held=held_by_repository(vms, jobs), jobs=jobs, weights=plan.weights
    )
    batch = placement.place_many(
        (request_for(pools[start.pool], plan) for start in ordered),
        plan.hosts,
        usage=usage(vms, plan),
        strategy=plan.strategy,
        overcommit=plan.overcommit,
    )
    return [
        dataclasses.replace(start, host=placed.host)
        for start, placed in zip(ordered, batch.placements, strict=True)
        if placed.placed
    ]


def fair_order(
    starts: Sequence[act.StartVm],
    *,
    held: Mapping[str, int],
    jobs: Mapping[int, model.Job],
    weights: Mapping[str, float],
) -> list[act.StartVm]:
    """``starts`` reordered by weighted water-filling over repositories (warm-pool starts,
    which serve no queued job, last); each repository's own starts keep their order."""
    per_repo: dict[str, collections.deque[act.StartVm]] = collections.defaultdict(collections.deque)
    oldest: dict[str, float] = {}
    warm: list[act.StartVm] = []
    for start in starts:
        job = jobs.get(start.job_id) if start.job_id is not None else None
        if job is None and start.reason != "queued job":
            warm.append(start)
            continue
        repo = job.repository if job is not None else start.scope
        per_repo[repo].append(start)
        if job is not None:
            oldest[repo] = min(oldest.get(repo, job.created_at), job.created_at)
    heap = [
        (held.get(repo, 0) / _weight(weights, repo), oldest.get(repo, float("inf")), repo)
        for repo in per_repo
    ]
    heapq.heapify(heap)
    ordered: list[act.StartVm] = []
    while heap:
        level, since, repo = heapq.heappop(heap)
        ordered.append(per_repo[repo].popleft())
        if per_repo[repo]:
            heapq.heappush(heap, (level + 1 / _weight(weights, repo), since, repo))
    return ordered + warm


def _weight(weights: Mapping[str, float], repo: str) -> float:
    value = weights.get(repo, 1.0)
    return value if value > 0 else 1.0


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
    found = placement.place(
        request_for(pool, plan),
        plan.hosts,
        usage=usage(vms, plan),
        strategy=plan.strategy,
        overcommit=plan.overcommit,
    )
    return None if found.placed else found.reason


def fair_share_note(
    repository: str,
    *,
    queued: Mapping[str, int],
    vms: Sequence[model.Vm],
    jobs: Mapping[int, model.Job],
    weights: Mapping[str, float],
) -> str | None:
    """ "fair share: acme/app holds 12 of 20 VMs (its share is 10)" when ``repository`` waits
    while capacity is shared with others; None when it holds no less than its share."""
    held = held_by_repository(vms, jobs)
    demands = [
        fairshare.Demand(repository=repo, queued=count, oldest=0.0)
        for repo, count in queued.items()
        if count > 0
    ]
    shared = fairshare.share(demands, held=held, available=0, weights=weights)
    others = sum(count for repo, count in held.items() if repo != repository)
    if not others:
        return None
    mine = held.get(repository, 0)
    total = sum(held.values())
    fair = shared.shares.get(repository, 0.0)
    text = f"{fair:.1f}".removesuffix(".0")
    return f"fair share: {repository} holds {mine} of {total} VMs (its share is {text})"
