"""Fair share: this tick's starts shared across repositories when demand exceeds them.

Weighted max-min fairness by water-filling, one start at a time: the next start goes to the
repository with the lowest level, VMs held plus starts given so far divided by its weight
(default 1); ties go to the one whose oldest queued job has waited longest, then by name. A
repository never gets more starts than it has queued jobs. So repositories below their fair
share are served first, what they leave goes to those with more demand, and one
repository's 256-job matrix does not starve the others. VMs already held are never taken
back: a repository above its share just gets no start until the others catch up.

Its fair share of all VMs (held plus available) is the continuous water-filling of that
total over each repository's want (held plus queued), as if held VMs could move; the
starts never take a repository above it (rounded up) while another, still queued, is below.
Cost: O(repositories * log + available * log(repositories)).
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import operator
from collections.abc import Iterable, Mapping, Sequence

from blacksmith_mini.domain import model
from blacksmith_mini.domain.demand import DemandKey

_REPOSITORY = operator.attrgetter("repository")
_CREATED = operator.attrgetter("created_at")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Demand:
    """Queued jobs of one repository (for one demand key, when ``key`` is set)."""

    repository: str
    queued: int
    oldest: float  # when its oldest queued job was created (epoch seconds)
    key: DemandKey | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class FairShare:
    """How many starts each repository gets this tick, and why the others wait."""

    starts: Mapping[str, int]  # repository -> starts (every repository with demand)
    by_key: Mapping[tuple[str, DemandKey | None], int]  # (repository, key) -> starts
    shares: Mapping[str, float]  # repository -> its fair share of all VMs
    holds: Mapping[str, int]  # repository -> VMs once this tick's starts are made
    queued: Mapping[str, int]
    total: int  # all VMs once this tick's starts are made

    def why_queued(self, repository: str) -> str | None:
        """Why some of ``repository``'s jobs get no start this tick because of the others;
        None when all of them start, or when no other repository holds a VM."""
        mine = self.holds.get(repository, 0)
        if self.starts.get(repository, 0) >= self.queued.get(repository, 0) or mine >= self.total:
            return None
        share = f"{self.shares.get(repository, 0.0):.1f}".removesuffix(".0")
        return f"fair share: {repository} holds {mine} of {self.total} VMs (its share is {share})"


def share(
    demands: Sequence[Demand],
    *,
    held: Mapping[str, int],
    available: int,
    weights: Mapping[str, float] | None = None,
) -> FairShare:
    """Share ``available`` starts across the repositories of ``demands``; ``held``: the VMs
    each repository holds now (repositories without queued jobs count too)."""
    weights = weights or {}
    queued, oldest = _per_repository(demands)
    repos = sorted(set(queued) | {repo for repo, count in held.items() if count > 0})
    weight = {repo: _weight(weights, repo) for repo in repos}
    starts = _water_fill(queued, oldest, held=held, weight=weight, available=max(0, available))
    holds = {repo: held.get(repo, 0) + starts.get(repo, 0) for repo in repos}
    wants = {repo: held.get(repo, 0) + queued.get(repo, 0) for repo in repos}
    capacity = sum(held.get(repo, 0) for repo in repos) + max(0, available)
    return FairShare(
        starts={repo: starts.get(repo, 0) for repo in queued},
        by_key=_split(demands, starts),
        shares=fair_shares(wants, weight=weight, capacity=capacity),
        holds=holds,
        queued=queued,
        total=sum(holds.values()),
    )


def fair_shares(
    wants: Mapping[str, int], *, weight: Mapping[str, float], capacity: int
) -> dict[str, float]:
    """Weighted max-min fair split of ``capacity`` over ``wants`` (continuous water-filling):
    each gets ``min(want, weight * level)`` with one level for all, filling ``capacity``."""
    order = sorted(wants, key=lambda repo: (wants[repo] / weight[repo], repo))
    left, weight_left = float(capacity), sum(weight[repo] for repo in order)
    found: dict[str, float] = {}
    for index, repo in enumerate(order):
        level = left / weight_left if weight_left > 0 else 0.0
        if wants[repo] <= weight[repo] * level:
            found[repo] = float(wants[repo])
            left -= wants[repo]
            weight_left -= weight[repo]
            continue
        for rest in order[index:]:
            found[rest] = weight[rest] * level
        break
    return found


def demands_from(by_key: Mapping[DemandKey, Sequence[model.Job]]) -> list[Demand]:
    """One ``Demand`` per (demand key, repository) from ``demand.queued_by_key``'s answer
    (each key's jobs oldest first, as it lists them)."""
    found: list[Demand] = []
    for key, jobs in by_key.items():
        counts = collections.Counter(map(_REPOSITORY, jobs))
        oldest = dict(
            zip(map(_REPOSITORY, reversed(jobs)), map(_CREATED, reversed(jobs)), strict=True)
        )
        found.extend(
            Demand(repository=repo, queued=count, oldest=oldest[repo], key=key)
            for repo, count in counts.items()
        )
    return found


def _per_repository(demands: Iterable[Demand]) -> tuple[dict[str, int], dict[str, float]]:
    queued: dict[str, int] = collections.Counter()
    oldest: dict[str, float] = {}
    for item in demands:
        if item.queued <= 0:
            continue
        queued[item.repository] += item.queued
        oldest[item.repository] = min(oldest.get(item.repository, item.oldest), item.oldest)
    return dict(queued), oldest


def _weight(weights: Mapping[str, float], repo: str) -> float:
    found = weights.get(repo, 1.0)
    if found <= 0:
        raise ValueError(f"the weight of {repo} must be above 0, not {found}")
    return found


def _water_fill(
    queued: Mapping[str, int],
    oldest: Mapping[str, float],
    *,
    held: Mapping[str, int],
    weight: Mapping[str, float],
    available: int,
) -> dict[str, int]:
    """One start at a time to the lowest level (held + given) / weight, oldest job first."""
    given = dict.fromkeys(queued, 0)
    heap = [(held.get(repo, 0) / weight[repo], oldest[repo], repo) for repo in queued]
    heapq.heapify(heap)
    while available > 0 and heap:
        _, since, repo = heap[0]
        given[repo] += 1
        available -= 1
        if given[repo] >= queued[repo]:
            heapq.heappop(heap)
        else:
            level = (held.get(repo, 0) + given[repo]) / weight[repo]
            heapq.heapreplace(heap, (level, since, repo))
    return given


def _split(
    demands: Sequence[Demand], starts: Mapping[str, int]
) -> dict[tuple[str, DemandKey | None], int]:
    """A repository's starts over its demand keys: round-robin, oldest queued job first."""
    caps: dict[tuple[str, DemandKey | None], int] = collections.Counter()
    first: dict[tuple[str, DemandKey | None], float] = {}
    for item in demands:
        if item.queued > 0:
            slot = (item.repository, item.key)
            caps[slot] += item.queued
            first[slot] = min(first.get(slot, item.oldest), item.oldest)
    slots: dict[str, list[tuple[str, DemandKey | None]]] = collections.defaultdict(list)
    for slot in sorted(caps, key=lambda slot: first[slot]):
        slots[slot[0]].append(slot)
    found: dict[tuple[str, DemandKey | None], int] = dict.fromkeys(caps, 0)
    for repo, mine in slots.items():
        left = starts.get(repo, 0)
        while left > 0:
            for slot in mine:
                if left > 0 and found[slot] < caps[slot]:
                    found[slot] += 1
                    left -= 1
    return found
