"""Helpers the driver tests share: open a driver on the fake network, wait for a condition,
run the fake VMM alone with our API client on its socket."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

from blacksmith_mini.vm.firecracker import api, network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver


async def wait_for(predicate: Callable[[], object], *, timeout: float = 15.0) -> None:
    """Until ``predicate()`` is true, checked every 50 ms; fails after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


@contextlib.asynccontextmanager
async def opened(
    settings: FirecrackerSettings, *, net: network.Network, data_dir: Path
) -> AsyncIterator[FirecrackerDriver]:
    """A driver watching every 50 ms; on exit every VM it holds is released."""
    drv = FirecrackerDriver(settings=settings, data_dir=data_dir, net=net, poll_interval=0.05)
    await drv.open()
    try:
        yield drv
    finally:
        for vm_id in list(drv.records):
            await drv.release(vm_id)
        await drv.close()


FAKE_VMM = Path(__file__).resolve().parents[1] / "fakes" / "fake_firecracker.py"


@contextlib.asynccontextmanager
async def fake_vmm(sock: Path, *, instance_id: str = "t1") -> AsyncIterator[api.FirecrackerApi]:
    """A fake Firecracker process on ``sock`` and our client on it; killed on exit."""
    vmm = subprocess.Popen(
        [sys.executable, str(FAKE_VMM), "--api-sock", str(sock), "--id", instance_id]
    )
    client = api.FirecrackerApi(socket_path=sock, timeout=2.0)
    try:
        await client.wait_until_ready(deadline=time.monotonic() + 5)
        yield client
    finally:
        await client.aclose()
        vmm.kill()
        vmm.wait()
