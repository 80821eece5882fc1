"""Event-loop lag while a VM's rootfs is sparse-copied: on the loop (old) vs off it (driver).

Writes a 2 GiB file of real (non-zero) data in a temporary directory, then copies it twice with
the sparse-copy strategy while a 10 ms heartbeat task measures how late it wakes up: once by
calling the strategy directly on the event loop (what a blocking call in a tick does), once
through ``disks.clone_off_loop`` (the driver's path: a worker thread). Prints max and p99 of the
heartbeat's lateness for each and their ratio. Not a test; run it by hand:

    uv run python bench/rootfs_copy_bench.py [--mib 2048] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from blacksmith_mini.vm.firecracker import disks

BEAT = 0.010


def write_dense(path: Path, *, mib: int) -> None:
    """``mib`` MiB of non-zero bytes (no holes, no zero chunks: all of it must be copied)."""
    block = (bytes(range(1, 256)) * (2**20 // 255 + 1))[: 2**20]
    with path.open("wb") as f:
        for _ in range(mib):
            f.write(block)


async def lag_during(copy: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run ``copy`` while a heartbeat sleeps BEAT at a time; (copy seconds, lateness list)."""
    lateness: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(BEAT)
            lateness.append(time.perf_counter() - before - BEAT)

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(3 * BEAT)  # the heartbeat is running
    started = time.perf_counter()
    await copy()
    elapsed = time.perf_counter() - started
    done.set()
    await beat
    return elapsed, lateness


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return max(values, default=0.0)
    return statistics.quantiles(values, n=100, method="inclusive")[98]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=2048, help="size of the base image in MiB")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rootfs-bench-", dir=args.dir))
    try:
        base = work / "base.ext4"
        print(f"writing {args.mib} MiB of data to {base} ...", flush=True)
        write_dense(base, mib=args.mib)
        strategy = disks.SparseCopyStrategy()

        async def on_loop() -> None:
            strategy.clone(src=base, dst=work / "old.ext4")  # blocks the loop: the old way

        async def off_loop() -> None:
            await disks.clone_off_loop(strategy, src=base, dst=work / "new.ext4")

        rows = []
        for label, copy, dst in (
            ("on the loop (old)", on_loop, work / "old.ext4"),
            ("clone_off_loop (driver)", off_loop, work / "new.ext4"),
        ):
            elapsed, lateness = await lag_during(copy)
            dst.unlink()
            rows.append((label, elapsed, max(lateness, default=0.0), p99(lateness), len(lateness)))
        print(f"\nsparse copy of {args.mib} MiB of data, heartbeat every {BEAT * 1000:.0f} ms")
        print(f"{'path':<26}{'copy s':>8}{'max lag ms':>12}{'p99 lag ms':>12}{'beats':>7}")
        for label, elapsed, worst, q99, beats in rows:
            print(f"{label:<26}{elapsed:>8.2f}{worst * 1000:>12.1f}{q99 * 1000:>12.1f}{beats:>7}")
        (_, _, old_max, old_p99, _), (_, _, new_max, new_p99, _) = rows
        print(
            f"{'ratio old/new':<26}{'':>8}{old_max / max(new_max, 1e-6):>11.0f}x"
            f"{old_p99 / max(new_p99, 1e-6):>11.0f}x"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
