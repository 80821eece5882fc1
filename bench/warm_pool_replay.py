"""A synthetic day of jobs replayed against warm pools: fixed ``min_idle`` against the pool
sized from demand (``domain/warmpool.py``), as a table of p95 wait and idle VM-minutes.

Run: ``uv run python bench/warm_pool_replay.py`` (``--seed N``, ``--refill S``). Prints
figures; asserts nothing.

The day (``synthetic_day``): a quiet night (a job every ~10 min), a working day with a
steady trickle (a job every ~40 s), bursts of 10 to 40 jobs at once (a matrix pushed)
every 20 to 60 minutes between 08:00 and 19:00, a bigger burst at 09:00 (the morning's
merges), and the same day a week earlier with its own noise (what "the same hour last week"
sees). Each job gets one fresh VM and runs 3 to 10 minutes.

The model (``replay``): a job that finds an idle VM starts at once (GitHub's dispatch, not
modelled); otherwise a VM is started for it and it waits one refill (``--refill`` seconds:
~30 s for a cold boot with the runner's start, ~2 s restoring a snapshot). Every minute the
pool's target is recomputed and idle VMs are started (each idle after one refill) or
stopped to meet it. Idle VM-minutes count every minute a VM sat idle, the cost of warmth.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from blacksmith_mini.domain import warmpool

DAY = 86400.0
WEEK = warmpool.WEEK_SECONDS
MAX_VMS = 60


def synthetic_day(rng: random.Random, *, start: float) -> list[float]:
    """Job arrival times (seconds) of one day starting at ``start``."""
    times: list[float] = []
    t = start
    while t < start + DAY:
        hour = (t - start) / 3600
        busy = 8 <= hour < 19
        t += rng.expovariate(1 / (40.0 if busy else 600.0))
        times.append(t)
    t = start + 8 * 3600
    while t < start + 19 * 3600:
        size = rng.randint(10, 40)
        times.extend(t + rng.uniform(0, 20) for _ in range(size))
        t += rng.uniform(20, 60) * 60
    times.extend(start + 9 * 3600 + rng.uniform(0, 120) for _ in range(50))
    return sorted(x for x in times if start <= x < start + DAY)


@dataclass
class Outcome:
    name: str
    waits: list[float]
    idle_seconds: float

    def p95(self) -> float:
        ordered = sorted(self.waits)
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    def mean(self) -> float:
        return sum(self.waits) / len(self.waits)


def replay(
    name: str,
    arrivals: list[float],
    history: list[float],
    *,
    refill: float,
    target_of: Callable[[float, list[float], int], int],
    rng: random.Random,
) -> Outcome:
    """Replay ``arrivals``; ``target_of(now, seen, busy)`` is the idle target each minute."""
    seen = list(history)  # arrival times known so far (last week's included)
    idle: list[float] = []  # times the idle VMs became idle
    coming: list[float] = []  # heap: times VMs started for warmth become idle
    busy_until: list[float] = []  # heap: when running jobs end (their VMs go away)
    waits: list[float] = []
    idle_seconds = 0.0
    day_start = arrivals[0] - (arrivals[0] % DAY)
    next_plan = day_start
    events = iter(arrivals)
    upcoming = next(events, None)

    def settle(now: float) -> None:
        while coming and coming[0] <= now:
            idle.append(heapq.heappop(coming))
        while busy_until and busy_until[0] <= now:
            heapq.heappop(busy_until)

    while upcoming is not None or next_plan < day_start + DAY:
        if upcoming is not None and upcoming < next_plan:
            now = upcoming
            settle(now)
            if idle:
                idle.sort()
                idle_seconds += now - idle.pop(0)
                waits.append(0.0)
            else:
                waits.append(refill)
            heapq.heappush(busy_until, now + rng.uniform(180, 600))
            bisect.insort(seen, now)
            upcoming = next(events, None)
            continue
        now = next_plan
        next_plan += 60.0
        settle(now)
        room = MAX_VMS - len(busy_until) - len(idle) - len(coming)
        target = target_of(now, seen, room + len(idle) + len(coming))
        have = len(idle) + len(coming)
        for _ in range(max(0, target - have)):
            heapq.heappush(coming, now + refill)
        for _ in range(max(0, have - target)):
            if idle:
                idle.sort()
                idle_seconds += now - idle.pop()  # the newest goes first
            elif coming:
                coming.remove(max(coming))
                heapq.heapify(coming)
    end = day_start + DAY
    idle_seconds += sum(end - t for t in idle)
    return Outcome(name, waits, idle_seconds)


def fixed(count: int) -> Callable[[float, list[float], int], int]:
    return lambda now, seen, room: count


def adaptive(
    *, min_idle: int, max_idle: int, refill: float
) -> Callable[[float, list[float], int], int]:
    def target(now: float, seen: list[float], room: int) -> int:
        windows = ((now - warmpool.RECENT_SECONDS, now), (now - WEEK - 450, now - WEEK + 450))
        chosen = [
            t
            for low, high in windows
            for t in seen[bisect.bisect_right(seen, low) : bisect.bisect_right(seen, high)]
        ]
        found = warmpool.idle_target(
            pool="bench",
            min_idle=min_idle,
            max_idle=max_idle,
            room=room,
            arrivals=chosen,
            refills=[refill],
            now=now,
        )
        return found.target

    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/warm_pool_replay.py")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--refill", type=float, default=30.0, help="cold start seconds")
    parser.add_argument("--snapshot-refill", type=float, default=2.0, help="restore seconds")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    last_week = synthetic_day(rng, start=0.0)
    today = synthetic_day(rng, start=WEEK)
    print(f"a synthetic day: {len(today)} jobs (last week's: {len(last_week)}), seed {args.seed}")
    print(f"max_vms {MAX_VMS}; a job finding no idle VM waits one refill\n")
    rows: list[tuple[str, float, Outcome]] = []
    for refill, label in ((args.refill, "cold boot"), (args.snapshot_refill, "snapshot")):
        plans: list[tuple[str, Callable[[float, list[float], int], int]]] = [
            ("fixed min_idle 0", fixed(0)),
            ("fixed min_idle 2", fixed(2)),
            ("fixed min_idle 5", fixed(5)),
            ("fixed min_idle 10", fixed(10)),
            ("adaptive 0..40", adaptive(min_idle=0, max_idle=40, refill=refill)),
            ("adaptive 1..40", adaptive(min_idle=1, max_idle=40, refill=refill)),
        ]
        for name, plan in plans:
            outcome = replay(
                name,
                today,
                last_week,
                refill=refill,
                target_of=plan,
                rng=random.Random(args.seed + 1),
            )
            rows.append((f"{label} ({refill:g} s)", refill, outcome))
    header = f"{'refill':<18} {'pool':<20} {'p95 wait s':>10} {'mean wait s':>11}"
    header += f" {'waited':>7} {'idle VM-min':>11}"
    print(header)
    for label, _refill, outcome in rows:
        waited = sum(1 for w in outcome.waits if w > 0) / len(outcome.waits)
        print(
            f"{label:<18} {outcome.name:<20} {outcome.p95():>10.1f} {outcome.mean():>11.2f}"
            f" {waited:>6.0%} {outcome.idle_seconds / 60:>11.0f}"
        )
    print(
        "\n(waited: jobs that found no idle VM; idle VM-minutes: the warmth paid for. "
        "The wait is our side only: GitHub's dispatch and the runner's own start are not in it.)"
    )


if __name__ == "__main__":
    main()
