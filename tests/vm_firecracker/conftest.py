"""Fixtures of the Firecracker driver tests: images, settings, fake VMM, recording network."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parents[1] / "fakes"
sys.path.insert(0, str(FAKES))

from fake_network import FakeNetwork  # noqa: E402
from mini_broker import MiniBroker  # noqa: E402

from blacksmith_mini.vm import driver as port  # noqa: E402
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings  # noqa: E402
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver  # noqa: E402
from vm_firecracker.driving import opened  # noqa: E402
from vm_firecracker.simserver import (  # noqa: E402
    Netns,
    SimEnv,
    kill_vm_processes,
    netns_unavailable,
    our_namespaces,
    short_data_dir,
)

FAKE_FIRECRACKER = FAKES / "fake_firecracker.py"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "netns: needs root and `ip netns` (real host networking)")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    """A fake kernel and a sparse 64 MiB 'ext4' base image with a little data in it."""
    kernel = tmp_path / "images" / "vmlinux"
    kernel.parent.mkdir()
    kernel.write_bytes(b"\x7fELF fake kernel")
    rootfs = tmp_path / "images" / "rootfs.ext4"
    with rootfs.open("wb") as f:
        f.write(b"superblock" * 100)
        f.seek(32 * 1024 * 1024)
        f.write(b"data in the middle")
        f.truncate(64 * 1024 * 1024)
    return kernel, rootfs


@pytest.fixture
def settings(images: tuple[Path, Path]) -> FirecrackerSettings:
    kernel, rootfs = images
    return FirecrackerSettings(
        firecracker_bin=FAKE_FIRECRACKER,
        kernel_path=kernel,
        rootfs_path=rootfs,
        rootfs_strategy="auto",
        min_free_disk_mib=0,
        stop_grace_seconds=1.0,
        api_timeout=2.0,
        socket_timeout=5.0,
        console_max_bytes=8192,
    )


@pytest.fixture
def fake_net() -> FakeNetwork:
    return FakeNetwork()


@pytest.fixture
def calls_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every API call the fake receives, as JSON lines."""
    path = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_FC_CALLS", str(path))
    return path


@pytest.fixture
def broker() -> Iterator[MiniBroker]:
    with MiniBroker() as b:
        yield b


@pytest.fixture
async def fc_driver(
    settings: FirecrackerSettings, fake_net: FakeNetwork, tmp_path: Path
) -> AsyncIterator[FirecrackerDriver]:
    async with opened(settings, net=fake_net, data_dir=tmp_path / "data") as drv:
        yield drv


def _spec(
    vm_id: int = 1, *, name: str | None = None, jit_config: str = "ZmFrZS1qaXQtY29uZmln"
) -> port.VmSpec:
    return port.VmSpec(
        vm_id=vm_id,
        name=name or f"bm-pool-{vm_id}",
        pool="default",
        labels=("self-hosted", "linux"),
        vcpus=2,
        memory_mib=512,
        jit_config=jit_config,
    )


@pytest.fixture
def make_spec() -> Callable[..., port.VmSpec]:
    """``make_spec(vm_id, name=..., jit_config=...)``."""
    return _spec


@pytest.fixture
def sim_env() -> Iterator[SimEnv]:
    """The real server in simulate mode, Firecracker driver + fake, in its own namespace."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"simulate-mode Firecracker tests: {reason}")
    with short_data_dir() as data_dir:
        env = SimEnv(Netns().create(), data_dir)
        try:
            yield env
        finally:
            env.close()
            kill_vm_processes(data_dir)
            for left in our_namespaces():  # a failed test's VMs: not left on the machine
                subprocess.run(["ip", "netns", "del", left], capture_output=True, check=False)
            env.netns.delete()
