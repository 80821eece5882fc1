"""Queued job to runner listening, three ways, through the real Firecracker driver and the fake
VMM: a cold boot, a snapshot restore, and a warm idle VM.

Run: ``uv run python bench/snapshot_start_bench.py`` (``--runs N``). Prints figures; asserts
nothing.

For each path, per start: ``start()`` (the driver's whole start: disk copy, tap, VMM process,
API calls, boot data) and start to "Listening for Jobs" on the console (the guest agent and
the simulated runner after it). The fake VMM is a Python process, so its own start-up (the
interpreter: ~100 ms here, real Firecracker's is ~8 CPU ms and a socket in ~12 ms) and its
handling of each call are not ours: the time ``start()`` spends waiting on the VMM (its API
socket coming up, each call's round trip) is measured and taken out, which leaves **our
overhead** per path (target: p95 < 50 ms for a restore): the disk copy, the tap, the records,
the boot data, spawning. Our supervisor's own interpreter start lies inside the socket wait,
so it is counted as the VMM's (it is ~40 ms of Python). A warm idle VM's runner is already
listening when the job comes, so its path is GitHub's dispatch only (not modelled: 0 here).

Next to Firecracker's published figures (docs/snapshotting, prod-host-setup.md; issue #2027):
snapshot load 3 ms (8.5 ms with a serial console on aarch64), 13-33 ms for 2 vCPU / 512 MB in
2020; third parties: ~47 ms restore to agent health (1 vCPU / 128 MiB), 340-360 ms end to end
with memory fault-in. Cold boot: InstanceStart to /sbin/init <= 125 ms (minimal kernel).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fakes"))
sys.path.insert(0, str(ROOT / "tests"))

import clone_network_bench  # noqa: E402
from fake_network import FakeNetwork  # noqa: E402
from mini_broker import MiniBroker  # noqa: E402

from blacksmith_mini.vm import driver as port  # noqa: E402
from blacksmith_mini.vm.firecracker import api  # noqa: E402
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings  # noqa: E402
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver  # noqa: E402

FAKE = ROOT / "tests" / "fakes" / "fake_firecracker.py"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def images(work: Path) -> tuple[Path, Path]:
    kernel, rootfs = work / "vmlinux", work / "rootfs.ext4"
    kernel.write_bytes(b"\x7fELF fake kernel")
    with rootfs.open("wb") as handle:
        handle.write(b"superblock" * 100)
        handle.truncate(64 * 1024 * 1024)
    return kernel, rootfs


async def fake_to_socket(work: Path, runs: int) -> list[float]:
    """Spawning the fake VMM and its API socket answering: the fake's own start-up."""
    found = []
    for index in range(runs):
        sock = work / f"alone-{index}.sock"
        started = time.perf_counter()
        vmm = subprocess.Popen([sys.executable, str(FAKE), "--api-sock", str(sock), "--id", "x"])
        client = api.FirecrackerApi(socket_path=sock, timeout=2.0)
        await client.wait_until_ready(deadline=time.monotonic() + 10)
        found.append(time.perf_counter() - started)
        await client.aclose()
        vmm.kill()
        vmm.wait()
    return found


class VmmClock:
    """Time spent waiting on the VMM inside ``start()``: its socket coming up (the supervisor
    and the VMM process starting) and each API call's round trip (the VMM's handling)."""

    def __init__(self) -> None:
        self.spent = 0.0
        request, ready = api.FirecrackerApi.request, api.FirecrackerApi.wait_until_ready
        clock = self

        async def timed_request(self: api.FirecrackerApi, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await request(self, *args, **kwargs)
            finally:
                clock.spent += time.perf_counter() - started

        async def timed_ready(self: api.FirecrackerApi, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await ready(self, *args, **kwargs)
            finally:
                clock.spent += time.perf_counter() - started

        api.FirecrackerApi.request = timed_request  # type: ignore[method-assign]
        api.FirecrackerApi.wait_until_ready = timed_ready  # type: ignore[method-assign]


VMM = VmmClock()


async def starts(
    drv: FirecrackerDriver, broker: MiniBroker, *, first_id: int, runs: int
) -> tuple[list[float], list[float], list[str], list[float]]:
    """``start()``, start-to-listening and the VMM's share of ``start()``, of ``runs`` VMs."""
    calls, listening, paths, vmm = [], [], [], []
    for vm_id in range(first_id, first_id + runs):
        name = f"bm-bench-{vm_id}"
        spec = port.VmSpec(
            vm_id=vm_id,
            name=name,
            pool="default",
            labels=("self-hosted",),
            vcpus=2,
            memory_mib=512,
            jit_config=broker.jit_config(name),
        )
        started, before = time.perf_counter(), VMM.spent
        seen = await drv.start(spec)
        calls.append(time.perf_counter() - started)
        vmm.append(VMM.spent - before)
        while not drv.observe_one(vm_id).runner_online:
            await asyncio.sleep(0.005)
        listening.append(time.perf_counter() - started)
        paths.append(seen.detail or "cold boot")
        await drv.release(vm_id)
    return calls, listening, paths, vmm


async def run(runs: int) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="snap-bench-", dir="/tmp") as tmp,
        MiniBroker() as broker,
    ):
        work = Path(tmp)
        kernel, rootfs = images(work)
        settings = FirecrackerSettings(
            firecracker_bin=FAKE,
            kernel_path=kernel,
            rootfs_path=rootfs,
            rootfs_strategy="auto",
            min_free_disk_mib=0,
            api_timeout=5.0,
            socket_timeout=10.0,
            snapshots=True,
        )
        net = FakeNetwork()
        baseline = await fake_to_socket(work, runs)
        drv = FirecrackerDriver(
            settings=settings, data_dir=work / "data", net=net, poll_interval=0.01
        )
        await drv.open()
        try:
            cold_settings = settings.model_copy(update={"snapshots": False})
            drv.settings = cold_settings
            cold = await starts(drv, broker, first_id=1, runs=runs)
            drv.settings = settings
            spec = port.VmSpec(
                vm_id=999,
                name="t",
                pool="default",
                labels=(),
                vcpus=2,
                memory_mib=512,
                jit_config="",
            )
            await drv.templates.build(spec, slot=200)
            restored = await starts(drv, broker, first_id=100, runs=runs)
        finally:
            await drv.close()
    fake = statistics.median(baseline)
    print(
        f"{runs} starts per path; the fake VMM to its socket alone: p50 {fake * 1000:.0f} ms, "
        f"p95 {p95(baseline) * 1000:.0f} ms (not ours, taken out below)\n"
    )
    print(
        f"{'path':<18} {'start() p50':>11} {'p95':>6} {'to listening p50':>16} {'p95':>6} "
        f"{'our overhead p50':>16} {'p95':>6}"
    )
    for label, (calls, listening, paths, vmm) in (
        ("cold boot", cold),
        ("snapshot restore", restored),
    ):
        ours = [c - v for c, v in zip(calls, vmm, strict=True)]
        print(
            f"{label:<18} {statistics.median(calls) * 1000:>9.0f}ms {p95(calls) * 1000:>4.0f}ms"
            f" {statistics.median(listening) * 1000:>14.0f}ms {p95(listening) * 1000:>4.0f}ms"
            f" {statistics.median(ours) * 1000:>14.0f}ms {p95(ours) * 1000:>4.0f}ms"
        )
        if label == "snapshot restore":
            assert all(p.startswith("restored") for p in paths), paths
    zeros = f"{0:>9.0f}ms {0:>4.0f}ms {0:>14.0f}ms {0:>4.0f}ms {0:>14.0f}ms {0:>4.0f}ms"
    print(f"{'warm idle VM':<18} {zeros}  (already listening: GitHub's dispatch only)")
    print(
        "\nFirecracker's own figures: snapshot load 3 ms (docs), 13-33 ms 2 vCPU/512 MB (#2027);"
        " restore to agent health ~47 ms (third party); cold InstanceStart to init <= 125 ms."
    )
    print(
        "\nThe network above is the recording fake. With snapshots each VM's real network is a "
        "namespace of its own, wired ahead of the start (spares.py) and so off its path; what "
        "wiring costs when no spare is ready:"
    )
    await clone_network_bench.run(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/snapshot_start_bench.py")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    asyncio.run(run(args.runs))


if __name__ == "__main__":
    main()
