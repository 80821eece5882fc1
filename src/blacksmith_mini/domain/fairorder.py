"""The starts in weighted fair order over repositories (water-filling), merged lazily. Pure.

A repository's k-th start comes at level (held + k) / weight; all starts sorted by (level,
oldest job, repository, k) is the water-filling order: the next start goes to the repository
holding the fewest VMs per unit of weight, ties to the oldest waiting job. As each repository's
levels rise, that order is a merge of one run per repository (a heap with an entry for each),
read only as far as it is needed: of 10,000 wanted starts, only those the limits and the hosts'
room let through are ever taken. Warm-pool starts, which serve no queued job, come last.

Runs come from a list of starts (``runs_of``: each start's repository is its job's, or its
scope's) or, when every key is one repository's (repository scope), straight from the keys
(``runs_by_scope``), which never makes the starts nobody takes.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import math
from collections.abc import Iterable, Iterator, Mapping

from blacksmith_mini.domain import model
from blacksmith_mini.domain.queuebook import Unstamped
from blacksmith_mini.domain.starts import QUEUED_JOB, Candidate, DemandKey, Wanted


@dataclasses.dataclass
class Run:
    """One repository's starts, in its own order: how many, its oldest job's time, the starts."""

    count: int
    oldest: float
    starts: Iterator[Candidate]


Runs = dict[str, Run]  # by lower-cased repository


def runs_of(
    wanted: Iterable[Candidate], *, jobs: Mapping[int, model.Job]
) -> tuple[Runs, Iterator[Candidate]]:
    """Each repository's run of ``wanted`` (a start counts for its job's repository, else for
    its scope), and the warm-pool starts in their order."""
    per_repo: dict[str, list[Candidate]] = collections.defaultdict(list)
    oldest: dict[str, float] = {}
    lowered: dict[str, str] = {}
    warm: list[Candidate] = []
    for found in wanted:
        _, scope, reason, job_id = found
        job = jobs.get(job_id) if job_id is not None else None
        if job is None and reason != QUEUED_JOB:
            warm.append(found)
            continue
        name = job.repository if job is not None else scope
        repo = lowered.get(name) or lowered.setdefault(name, name.lower())
        per_repo[repo].append(found)
        if job is not None and job.created_at < oldest.get(repo, math.inf):
            oldest[repo] = job.created_at
    runs = {
        repo: Run(count=len(mine), oldest=oldest.get(repo, math.inf), starts=iter(mine))
        for repo, mine in per_repo.items()
    }
    return runs, iter(warm)


def runs_by_scope(
    wanted: Wanted, *, jobs: Mapping[int, model.Job]
) -> tuple[Runs, Iterator[Candidate]]:
    """``runs_of(wanted.round_robin(wanted.order))`` when each key's scope is a repository
    (its jobs are that repository's), without making a start before it is read."""
    keys: dict[str, list[DemandKey]] = collections.defaultdict(list)
    warm: list[DemandKey] = []
    for key in wanted.order:
        (keys[key[1].lower()] if key in wanted.queued else warm).append(key)
    runs: Runs = {}
    for repo, mine in keys.items():
        firsts = [age for key in mine if (age := _first_age(wanted, key, jobs)) is not None]
        runs[repo] = Run(
            count=sum(wanted.counts[key] for key in mine),
            oldest=min(firsts, default=math.inf),
            starts=wanted.round_robin(mine),
        )
    return runs, wanted.round_robin(warm)


def _first_age(wanted: Wanted, key: DemandKey, jobs: Mapping[int, model.Job]) -> float | None:
    """When ``key``'s oldest unstamped job was created (None: it has none)."""
    if isinstance(wanted.unstamped, Unstamped):
        return wanted.unstamped.first_age(key)
    found = wanted.unstamped.get(key)
    return jobs[found[0]].created_at if found else None


def merge(
    runs: Runs,
    warm: Iterator[Candidate],
    *,
    held: Mapping[str, int],
    weights: Mapping[str, float],
) -> Iterator[Candidate]:
    """The starts of ``runs`` in fair order, then ``warm``'s."""
    weight = lowered_weights(weights)
    heap = [
        (held.get(repo, 0) / weight.get(repo, 1.0), run.oldest, repo, 0)
        for repo, run in runs.items()
        if run.count > 0
    ]
    heapq.heapify(heap)
    while heap:
        _, first, repo, k = heap[0]
        run = runs[repo]
        yield next(run.starts)
        if k + 1 < run.count:
            level = (held.get(repo, 0) + k + 1) / weight.get(repo, 1.0)
            heapq.heapreplace(heap, (level, first, repo, k + 1))
        else:
            heapq.heappop(heap)
    yield from warm


def lowered_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """The weights by lower-cased repository; one not above 0 counts as 1 (the default)."""
    return {repo.lower(): value if value > 0 else 1.0 for repo, value in weights.items()}
