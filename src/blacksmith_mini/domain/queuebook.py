"""The queued jobs per demand key, kept between ticks so a tick does not re-sort 20,000 jobs.

What the planner's ``_scale`` needs of the open jobs: per (pool, scope) key, how many queued
jobs it has, when its oldest was created, and its jobs not yet stamped "VM requested", oldest
first (``model.JOB_AGE``: created, then id), which its starts take in turn. ``QueueBook.of``
works that out from scratch (group, then one sort per key). The loop keeps one book and
``sync``s it each tick with its jobs: only the jobs whose record changed since the last sync
(a job is a frozen record, replaced when it changes: compared by identity) move, each by a
binary search in its key's lists. A policy that matches jobs otherwise (the pools' labels and
sizes, the scopes, the served repositories) or a tick where most jobs changed rebuilds it.
Either way the answers are those of ``of`` over the same jobs, which the property tests hold
it to. Pure: no I/O, no clock; the loop owns the book.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Iterable, Iterator, Mapping, Sequence

from blacksmith_mini.domain import labels, model
from blacksmith_mini.domain.demand import DemandKey, demand_key

Age = tuple[float, int]  # (created_at, id): a job's place in age order
REBUILD_SHARE = 8  # more than 1/8 of the jobs changed: rebuild rather than move them one by one


class QueueBook:
    """Queued jobs per demand key: ``counts``, ``oldest``, ``unstamped`` (oldest first)."""

    def __init__(self, policy: model.Policy) -> None:
        self.fitted = fit(policy)
        self._policy = policy
        self._seen: dict[int, model.Job] = {}  # every job folded in, by id, as last seen
        self._placed: dict[int, tuple[DemandKey, Age, bool]] = {}  # queued ones: key, age, stamped
        self._unstamped: dict[DemandKey, list[Age]] = {}
        self._unstamped_ids: dict[DemandKey, list[int]] = {}  # the same jobs' ids, same order
        self._stamped: dict[DemandKey, list[Age]] = {}
        self._keys: dict[tuple[tuple[str, ...], str], DemandKey | None] = {}

    @classmethod
    def of(cls, jobs: Iterable[model.Job], policy: model.Policy) -> QueueBook:
        book = cls(policy)
        book._rebuild({job.id: job for job in jobs})
        return book

    def sync(self, jobs: Mapping[int, model.Job], policy: model.Policy) -> QueueBook:
        """This book brought up to ``jobs`` (all the open jobs), or a new one for a new policy."""
        if fit(policy) != self.fitted:
            fresh = QueueBook(policy)
            fresh._rebuild(jobs)
            return fresh
        self._policy = policy
        seen = self._seen
        changed = [job for job_id, job in jobs.items() if seen.get(job_id) is not job]
        removed = seen.keys() - jobs.keys() if len(seen) + len(changed) > len(jobs) else set()
        if (len(changed) + len(removed)) * REBUILD_SHARE > len(jobs):
            self._rebuild(jobs)
            return self
        for job_id in removed:
            self._drop(job_id)
            del seen[job_id]
        for job in changed:
            self._drop(job.id)
            self._add(job)
            seen[job.id] = job
        return self

    # --- what the planner reads -----------------------------------------------------------

    def counts(self) -> dict[DemandKey, int]:
        """Queued jobs per key (keys with none left out)."""
        found: dict[DemandKey, int] = collections.Counter()
        for key, ages in self._unstamped.items():
            found[key] += len(ages)
        for key, ages in self._stamped.items():
            found[key] += len(ages)
        return {key: count for key, count in found.items() if count}

    def oldest(self) -> dict[DemandKey, float]:
        """When each key's oldest queued job was created."""
        found: dict[DemandKey, float] = {}
        for lists in (self._unstamped, self._stamped):
            for key, ages in lists.items():
                if ages and (key not in found or ages[0][0] < found[key]):
                    found[key] = ages[0][0]
        return found

    def first_ages(self) -> dict[DemandKey, float]:
        """When each key's oldest unstamped job was created (keys with none left out)."""
        return {key: ages[0][0] for key, ages in self._unstamped.items() if ages}

    def unstamped(self) -> Unstamped:
        return Unstamped(self._unstamped_ids, keys=self.counts(), first_ages=self.first_ages())

    # --- keeping it -------------------------------------------------------------------------

    def _rebuild(self, jobs: Mapping[int, model.Job]) -> None:
        self._seen = dict(jobs)
        self._placed.clear()
        unstamped: dict[DemandKey, list[Age]] = collections.defaultdict(list)
        stamped: dict[DemandKey, list[Age]] = collections.defaultdict(list)
        queued = model.JobStatus.QUEUED
        for job in jobs.values():
            if job.status is not queued:
                continue
            key = self._key(job)
            if key is None:
                continue
            age, is_stamped = (job.created_at, job.id), job.vm_requested_at is not None
            (stamped if is_stamped else unstamped)[key].append(age)
            self._placed[job.id] = (key, age, is_stamped)
        for lists in (unstamped, stamped):
            for ages in lists.values():
                ages.sort()
        self._unstamped, self._stamped = dict(unstamped), dict(stamped)
        self._unstamped_ids = {
            key: [job_id for _, job_id in ages] for key, ages in self._unstamped.items()
        }

    def _add(self, job: model.Job) -> None:
        if job.status is not model.JobStatus.QUEUED:
            return
        key = self._key(job)
        if key is None:
            return
        age, is_stamped = (job.created_at, job.id), job.vm_requested_at is not None
        if is_stamped:
            bisect.insort(self._stamped.setdefault(key, []), age)
        else:
            ages = self._unstamped.setdefault(key, [])
            at = bisect.bisect(ages, age)
            ages.insert(at, age)
            self._unstamped_ids.setdefault(key, []).insert(at, job.id)
        self._placed[job.id] = (key, age, is_stamped)

    def _drop(self, job_id: int) -> None:
        placed = self._placed.pop(job_id, None)
        if placed is None:
            return
        key, age, is_stamped = placed
        lists = self._stamped if is_stamped else self._unstamped
        ages = lists[key]
        at = bisect.bisect_left(ages, age)
        del ages[at]
        if not is_stamped:
            del self._unstamped_ids[key][at]
        if not ages:
            del lists[key]
            if not is_stamped:
                del self._unstamped_ids[key]

    def _key(self, job: model.Job) -> DemandKey | None:
        marker = (job.labels, job.repository)
        if marker not in self._keys:
            found = labels.match(job.labels, self._policy.pools)
            self._keys[marker] = (
                demand_key(job, found.pool, self._policy) if found.pool is not None else None
            )
        return self._keys[marker]


class Unstamped(Mapping[DemandKey, Sequence[int]]):
    """Each key's queued jobs not yet stamped "VM requested", oldest first (read off a book:
    its lists are kept in that order), and when each key's oldest of them was created."""

    def __init__(
        self,
        ids: Mapping[DemandKey, Sequence[int]],
        *,
        keys: Mapping[DemandKey, int],
        first_ages: Mapping[DemandKey, float],
    ) -> None:
        self._ids, self._all, self._first = ids, keys, first_ages

    def __getitem__(self, key: DemandKey) -> Sequence[int]:
        if key not in self._all:
            raise KeyError(key)
        return self._ids.get(key, ())

    def first_age(self, key: DemandKey) -> float | None:
        """When the key's oldest unstamped job was created (None: it has none)."""
        return self._first.get(key)

    def __iter__(self) -> Iterator[DemandKey]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)


def fit(policy: model.Policy) -> tuple[object, ...]:
    """What the keys depend on: what label matching reads of the pools (not their limits or
    warm targets, which change as the loop runs), the scopes, and (organization scope) which
    repositories the runner group serves."""
    pools = frozenset((p.name, p.labels, p.vcpus, p.memory_mib) for p in policy.pools)
    return (pools, policy.scopes, policy.org_scope, frozenset(policy.unserved))
