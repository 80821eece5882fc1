"""Placement and fair share per tick: 100 hosts, 10,000 VMs, 20,000 queued jobs (target 50 ms).

A tick here is what the many-hosts planner will add: each host's usage from its VMs
(``placement.usage_of``), the queued jobs per (demand key, repository)
(``fairshare.demands_from``, from ``demand.queued_by_key``'s answer, which the planner already
computes), the fair share of this tick's starts (``fairshare.share``) and placing those starts
(``placement.place_many``). 50 repositories, one with a 5,000-job matrix; 80 x64 and 20 arm64
hosts, 6 of them cordoned, draining or down; CPU overcommit 2.0.

Run: ``uv run python bench/placement_bench.py``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import pct

from blacksmith_mini.domain import demand, fairshare, labels, model
from blacksmith_mini.domain import placement as pl

TARGET_MS = 50.0
HOSTS, VMS, JOBS, REPOS = 100, 10_000, 20_000, 50
POOLS = (
    model.Pool(name="default", labels=labels.normalize(["self-hosted", "linux", "x64"])),
    model.Pool(
        name="large",
        labels=labels.normalize(["self-hosted", "linux", "x64", "large"]),
        vcpus=8,
        memory_mib=16 * 1024,
    ),
    model.Pool(name="arm", labels=labels.normalize(["self-hosted", "linux", "arm64"])),
)
DISK_MIB = {"default": 20 * 1024, "large": 40 * 1024, "arm": 20 * 1024}
OVERCOMMIT = pl.Overcommit(cpu=2.0)


def hosts() -> list[pl.Host]:
    states = [pl.HostState.CORDONED] * 3 + [pl.HostState.DRAINING] * 2 + [pl.HostState.DOWN]
    states += [pl.HostState.UP] * (HOSTS - len(states))
    return [
        pl.Host(
            name=f"host-{index:03}",
            arch="arm64" if index % 5 == 4 else "x64",
            vcpus=192,
            memory_mib=768 * 1024,
            disk_mib=8 * 1024 * 1024,
            state=states[(index * 37) % HOSTS],
        )
        for index in range(HOSTS)
    ]


def request_for(pool: model.Pool) -> pl.Request:
    return pl.Request(
        vcpus=pool.vcpus,
        memory_mib=pool.memory_mib,
        disk_mib=DISK_MIB[pool.name],
        labels=pool.registration_labels(),
    )


World = tuple[
    list[tuple[str, pl.Reservation]], dict[str, int], dict[demand.DemandKey, list[model.Job]]
]


def world(rng: random.Random) -> World:
    """The VMs (host, size), the VMs each repository holds, and the queued jobs per key."""
    found = hosts()
    x64 = [host.name for host in found if host.arch == "x64"]
    arm = [host.name for host in found if host.arch == "arm64"]
    repos = [f"acme/repo-{index:02}" for index in range(REPOS)]
    vms: list[tuple[str, pl.Reservation]] = []
    held: Counter[str] = Counter()
    for index in range(VMS):
        pool = rng.choices(POOLS, weights=(70, 15, 15))[0]
        on = arm if pool.name == "arm" else x64
        vms.append((on[index % len(on)], request_for(pool).size))
        held[rng.choice(repos)] += 1
    jobs = [queued_job(job_id, repos=repos, rng=rng) for job_id in range(JOBS)]
    policy = model.Policy(max_vms=VMS + 2_000, pools=POOLS, scopes=tuple(repos))
    return vms, dict(held), demand.queued_by_key(jobs, policy)


def queued_job(job_id: int, *, repos: list[str], rng: random.Random) -> model.Job:
    """The first 5,000 jobs are one repository's matrix; the rest spread over the others."""
    pool = rng.choices(POOLS, weights=(70, 15, 15))[0]
    return model.Job(
        id=job_id,
        run_id=job_id,
        repository=repos[0] if job_id < 5_000 else rng.choice(repos[1:]),
        labels=tuple(sorted(pool.labels)),
        status=model.JobStatus.QUEUED,
        created_at=rng.uniform(0, 600),
    )


def tick(
    state: World,
    *,
    available: int,
    strategy: pl.Strategy,
) -> tuple[float, float, float, int]:
    """One tick: (demand per repository ms, fair share ms, placement ms, VMs placed)."""
    vms, held, by_key = state
    pools, fleet = {pool.name: request_for(pool) for pool in POOLS}, hosts()
    started = time.perf_counter()
    demands = fairshare.demands_from(by_key)
    counted = time.perf_counter()
    shared = fairshare.share(demands, held=held, available=available)
    middle = time.perf_counter()
    usage = pl.usage_of(vms)
    requests = [
        pools[key[0]] for (_, key), count in shared.by_key.items() if key for _ in range(count)
    ]
    batch = pl.place_many(requests, fleet, usage=usage, strategy=strategy, overcommit=OVERCOMMIT)
    ended = time.perf_counter()
    placed = sum(1 for found in batch.placements if found.placed)
    return (counted - started) * 1000, (middle - counted) * 1000, (ended - middle) * 1000, placed


def main() -> None:
    state = world(random.Random(11))
    print(f"placement + fair share per tick: {HOSTS} hosts, {VMS:,} VMs, {JOBS:,} queued jobs")
    print("milliseconds; demand = fairshare.demands_from, place = usage_of + place_many")
    print(
        f"{'strategy':>8} {'starts':>7} {'placed':>7} {'demand':>7} {'share':>7} {'place':>7} "
        f"{'tick p50':>9} {'tick p95':>9} {'p50/target':>11}"
    )
    for strategy in pl.Strategy:
        for available in (500, 2_000, 5_000):
            tick(state, available=available, strategy=strategy)  # warm-up
            runs = [tick(state, available=available, strategy=strategy) for _ in range(40)]
            parts = [statistics.median(run[part] for run in runs) for part in range(3)]
            totals = [run[0] + run[1] + run[2] for run in runs]
            p50 = statistics.median(totals)
            print(
                f"{strategy.value:>8} {available:>7,} {runs[0][3]:>7,} {parts[0]:>7.2f} "
                f"{parts[1]:>7.2f} {parts[2]:>7.2f} {p50:>9.2f} {pct(totals, 0.95):>9.2f} "
                f"{p50 / TARGET_MS:>10.2f}x"
            )
    print(f"target: {TARGET_MS:.0f} ms per tick (ratio below 1.00x meets it)")


if __name__ == "__main__":
    main()
