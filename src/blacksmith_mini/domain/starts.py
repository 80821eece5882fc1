"""Starts handed out per demand key: one at a time, round-robin, oldest queued job's key first.

``wanted_starts`` puts the keys that want VMs in hand-out order (``Wanted``). On one box,
``Wanted.candidates`` hands them out within ``max_vms`` and the pools' limits, each then made a
``StartVm``. With many hosts every wanted start counts (thousands when demand outruns the
hosts): ``hostplan.allocate_wanted`` orders them fairly and cuts them to what the limits and
the hosts' room allow, reading them lazily (``Wanted.round_robin``), and makes actions only of
those that get a host. A start is a plain tuple until then ``(pool, scope, reason, job id)``:
a fortieth of a frozen action's cost, which is what keeps a 20,000-job tick cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model

DemandKey = tuple[str, str]  # (pool name, scope)
Candidate = tuple[str, str, str, int | None]  # pool, scope, reason, job id (None: none)
QUEUED_JOB = "queued job"
WARM_MINIMUM = "warm pool minimum"


@dataclasses.dataclass(frozen=True)
class Wanted:
    """The starts wanted per demand key, the keys in hand-out order (oldest queued job first,
    blocked pools left out); ``unstamped``: each key's jobs not yet stamped "VM requested",
    oldest first, which its starts take in turn; ``queued``: the keys with queued jobs (the
    others' starts keep the warm pool's minimum)."""

    order: tuple[DemandKey, ...]
    counts: Mapping[DemandKey, int]
    unstamped: Mapping[DemandKey, Sequence[int]]
    queued: frozenset[DemandKey]

    def reason(self, key: DemandKey) -> str:
        return QUEUED_JOB if key in self.queued else WARM_MINIMUM

    def start(self, key: DemandKey, index: int) -> Candidate:
        """The ``index``-th start of ``key`` (from 0)."""
        jobs = self.unstamped.get(key, ())
        job_id = jobs[index] if index < len(jobs) else None
        return (key[0], key[1], self.reason(key), job_id)

    def candidates(
        self,
        *,
        pools: Mapping[str, model.Pool],
        budget: int,
        active_per_pool: Mapping[str, int],
        capped: bool = True,
    ) -> Iterator[Candidate]:
        """Round-robin over the keys, at most ``budget`` in all and, when ``capped``, none
        past a pool's ``max_vms``."""
        remaining = {key: self.counts[key] for key in self.order}
        taken = dict.fromkeys(self.order, 0)
        per_pool = dict(active_per_pool)
        while budget > 0 and remaining:
            for key in list(remaining):
                pool = pools[key[0]]
                if budget <= 0:
                    break
                if capped and per_pool.get(pool.name, 0) >= pool.max_vms:
                    del remaining[key]
                    continue
                yield self.start(key, taken[key])
                taken[key] += 1
                per_pool[pool.name] = per_pool.get(pool.name, 0) + 1
                budget -= 1
                remaining[key] -= 1
                if remaining[key] <= 0:
                    del remaining[key]

    def round_robin(self, keys: Sequence[DemandKey]) -> Iterator[Candidate]:
        """``candidates`` uncapped, of ``keys`` only (in hand-out order): lazily, so a
        repository's run of starts is read only as far as the fair order needs it."""
        live = [key for key in keys if self.counts[key] > 0]
        index = 0
        while live:
            for key in live:
                yield self.start(key, index)
            index += 1
            live = [key for key in live if self.counts[key] > index]


def wanted_starts(
    *,
    wanted: Mapping[DemandKey, int],
    oldest: Mapping[DemandKey, float],
    unstamped: Mapping[DemandKey, Sequence[int]],
    blocked: frozenset[str],
) -> Wanted:
    """The keys that want VMs, in hand-out order: the oldest queued job's key first."""
    order = sorted(
        (key for key, want in wanted.items() if want > 0 and key[0] not in blocked),
        key=lambda key: (oldest.get(key, float("inf")), key),
    )
    counts = {key: wanted[key] for key in order}
    return Wanted(order=tuple(order), counts=counts, unstamped=unstamped, queued=frozenset(oldest))


def action(candidate: Candidate, *, host: str | None = None) -> act.StartVm:
    pool, scope, reason, job_id = candidate
    return act.StartVm(pool=pool, scope=scope, reason=reason, job_id=job_id, host=host)


def candidate(start: act.StartVm) -> Candidate:
    return (start.pool, start.scope, start.reason, start.job_id)
