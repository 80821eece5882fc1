"""What a VM's own network namespace costs at start and at release, with the real
``HostNetwork`` (pyroute2, nft, ``ip netns exec``) inside a throwaway namespace: a plain tap
(snapshots off) against the routed namespace every VM gets with snapshots. Needs root, ``ip``
and ``nft``; prints why not otherwise. ``snapshot_start_bench.py`` runs it after its table.

    uv run python bench/clone_network_bench.py [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import time
import uuid

from blacksmith_mini.vm.firecracker import network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    return f"needs {', '.join(missing)}" if missing else None


async def timings(*, snapshots: bool, runs: int, host_ns: str) -> tuple[list[float], list[float]]:
    settings = FirecrackerSettings(tap_prefix="bnch", snapshots=snapshots)
    net = network.HostNetwork(settings=settings, netns_name=host_ns)
    await net.prepare([])
    adds: list[float] = []
    removes: list[float] = []
    for slot in range(runs):
        lease = network.lease_for(settings, slot=slot, instance_id=f"b{uuid.uuid4().hex[:8]}")
        began = time.perf_counter()
        await net.add_vm(lease, uid=None, gid=None)
        adds.append(time.perf_counter() - began)
        began = time.perf_counter()
        await net.remove_vm(lease)
        removes.append(time.perf_counter() - began)
    return adds, removes


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


async def run(runs: int) -> None:
    reason = unavailable()
    if reason:
        print(f"VM network per start: not measured here ({reason})")
        return
    host_ns = f"bnchhost{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", host_ns], check=True)
    try:
        rows = [
            ("tap (snapshots off)", await timings(snapshots=False, runs=runs, host_ns=host_ns)),
            ("own namespace, NAT", await timings(snapshots=True, runs=runs, host_ns=host_ns)),
        ]
    finally:
        subprocess.run(["ip", "netns", "del", host_ns], check=False)
    print(f"\nVM network per start, real HostNetwork, {runs} VMs each")
    print(f"{'network':<22} {'add p50':>8} {'p95':>6} {'remove p50':>11} {'p95':>6}")
    base = statistics.median(rows[0][1][0])
    for label, (adds, removes) in rows:
        print(
            f"{label:<22} {statistics.median(adds) * 1000:>6.0f}ms {p95(adds) * 1000:>4.0f}ms"
            f" {statistics.median(removes) * 1000:>9.0f}ms {p95(removes) * 1000:>4.0f}ms"
            f"  ({statistics.median(adds) / base:.1f}x the tap's add)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/clone_network_bench.py")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    asyncio.run(run(args.runs))


if __name__ == "__main__":
    main()
