"""Planner time per tick with 10,000 queued jobs and 2,000 VMs (target: under 20 ms).

Run: ``make bench`` or ``uv run python bench/planner_bench.py``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import synthetic

from blacksmith_mini.domain import planner

TARGET_MS = 20.0


def measure(jobs: int, vms: int, rounds: int) -> list[float]:
    snapshot, policy, now = synthetic.world(jobs=jobs, vms=vms)
    planner.plan(snapshot, policy, now)  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        actions = planner.plan(snapshot, policy, now)
        times.append((time.perf_counter() - started) * 1000)
    assert actions is not None
    return times


def main() -> None:
    print("planner.plan(): milliseconds per tick")
    print(f"{'jobs':>7} {'vms':>6} {'p50':>8} {'p95':>8} {'max':>8} {'p50/target':>11}")
    for jobs, vms, rounds in ((1_000, 200, 50), (10_000, 2_000, 30)):
        times = sorted(measure(jobs, vms, rounds))
        p50 = statistics.median(times)
        p95 = times[int(0.95 * (len(times) - 1))]
        print(
            f"{jobs:>7} {vms:>6} {p50:>8.2f} {p95:>8.2f} {times[-1]:>8.2f} "
            f"{p50 / TARGET_MS:>10.2f}x"
        )
    print(
        f"target: {TARGET_MS:.0f} ms per tick at 10,000 jobs and 2,000 VMs "
        "(ratio below 1.00x meets it)"
    )


if __name__ == "__main__":
    main()
