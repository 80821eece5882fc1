"""How many idle VMs a pool keeps warm, from its recent demand. Pure: no I/O, no clock.

A warm VM is worth keeping when a job would otherwise wait for a refill (a VM started for it
only when it arrives). So a pool's demand at an instant is the number of its jobs that
arrived within one refill time before it: those the warm VMs must absorb before a refill can
land. ``idle_target`` samples that on a grid over the last 15 minutes, and over the same hour
a week ago (a Monday-morning burst is known before it comes), takes the 90th percentile of
each and keeps the larger, rounded up, then bounds it by the pool's ``min_idle`` and
``max_idle`` and by its free room (``max_vms`` less its busy VMs). The refill time is the
median of the pool's recent starts (VM requested to runner ready), so a pool whose VMs
restore from a snapshot in a second keeps fewer idle VMs than one that boots cold in thirty.

A pool with ``max_idle`` unset (or not above ``min_idle``) keeps exactly ``min_idle``, as
before. ``reason`` says which bound or figure decided, in words for the dashboard.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from blacksmith_mini.domain import model

RECENT_SECONDS = 15 * 60.0
WEEK_SECONDS = 7 * 86400.0
GRID_SECONDS = 15.0
PERCENTILE = 0.9
DEFAULT_REFILL_SECONDS = 30.0
MIN_REFILL_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class IdleTarget:
    pool: str
    target: int
    adaptive: bool
    recent_p90: float | None  # jobs per refill time, the last 15 minutes
    last_week_p90: float | None  # the same, the same hour a week ago
    refill_seconds: float | None
    reason: str


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 1) of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def demand(arrivals: Iterable[float], *, start: float, end: float, refill: float) -> list[int]:
    """Jobs arrived within ``refill`` seconds before each grid instant of ``(start, end]``."""
    times = sorted(arrivals)
    found: list[int] = []
    low = high = 0
    instant = start + GRID_SECONDS
    while instant <= end + 1e-9:
        while high < len(times) and times[high] <= instant:
            high += 1
        while low < high and times[low] <= instant - refill:
            low += 1
        found.append(high - low)
        instant += GRID_SECONDS
    return found


def refill_time(refills: Sequence[float]) -> float | None:
    """The median of recent refills (VM requested to runner ready), None when there is none."""
    return max(MIN_REFILL_SECONDS, statistics.median(refills)) if refills else None


def idle_target(
    *,
    pool: str,
    min_idle: int,
    max_idle: int | None,
    room: int,
    arrivals: Sequence[float],
    refills: Sequence[float],
    now: float,
) -> IdleTarget:
    """The idle VMs ``pool`` should keep now. ``room``: VMs it may have idle (``max_vms``
    less its busy ones); ``arrivals``: when its jobs of the last 15 minutes and of the 15
    minutes around now a week ago were created; ``refills``: its recent starts' seconds."""
    if max_idle is None or max_idle <= min_idle:
        return IdleTarget(pool, min_idle, False, None, None, None, f"fixed: min_idle {min_idle}")
    measured = refill_time(refills)
    refill = measured or DEFAULT_REFILL_SECONDS
    times = list(arrivals)
    recent = percentile(demand(times, start=now - RECENT_SECONDS, end=now, refill=refill), 0.9)
    ago = now - WEEK_SECONDS
    week = demand(
        times, start=ago - RECENT_SECONDS / 2, end=ago + RECENT_SECONDS / 2, refill=refill
    )
    last_week = percentile(week, PERCENTILE)
    wanted = math.ceil(max(recent, last_week))
    source = "the last 15 min" if recent >= last_week else "the same hour last week"
    refill_words = f"{refill:.0f} s refill" + ("" if measured else " (assumed)")
    why = f"p90 {max(recent, last_week):g} jobs per {refill_words} over {source}"
    target = wanted
    if target < min_idle:
        target, why = min_idle, f"{why}; raised to min_idle {min_idle}"
    if target > max_idle:
        target, why = max_idle, f"{why}; capped by max_idle {max_idle}"
    if target > max(room, 0) and target > min_idle:
        target = max(min_idle, room)
        why = f"{why}; capped by free room ({max(room, 0)} more VMs fit)"
    return IdleTarget(pool, target, True, recent, last_week, measured, why)


def idle_vm_seconds(
    vms: Iterable[model.Vm], started: Mapping[int, float | None], *, since: float, now: float
) -> dict[str, float]:
    """Per pool, the seconds its VMs sat idle (runner ready, no job yet) within ``since`` to
    ``now``: from ``ready_at`` to its job's start (``started``), else to when it went busy,
    ended, or now. What the warmth cost, for the dashboard."""
    totals: dict[str, float] = {}
    for vm in vms:
        if vm.ready_at is None:
            continue
        end = started.get(vm.job_id) if vm.job_id is not None else None
        if end is None and vm.state is model.VmState.BUSY:
            end = vm.state_since
        if end is None:
            end = vm.ended_at if vm.ended_at is not None else now
        low, high = max(vm.ready_at, since), min(end, now)
        if high > low:
            totals[vm.pool] = totals.get(vm.pool, 0.0) + high - low
    return totals
