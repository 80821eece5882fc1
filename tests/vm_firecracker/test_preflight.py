"""``FirecrackerDriver.preflight``: why a start would fail, found before a runner exists."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_network import FakeNetwork

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker import network, preflight
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver

pytestmark = pytest.mark.anyio


class BrokenNetwork(FakeNetwork):
    """A FakeNetwork whose readiness check fails (e.g. nft missing, our table flushed)."""

    async def check(self) -> None:
        raise network.NetworkError("nftables table inet blacksmith_mini is missing")


def spec(
    base: port.VmSpec, *, vcpus: int | None = None, memory_mib: int | None = None
) -> port.VmSpec:
    return dataclasses.replace(
        base, vcpus=vcpus or base.vcpus, memory_mib=memory_mib or base.memory_mib
    )


async def test_a_good_spec_passes_without_side_effects(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    calls_log: Path,
    fake_net: FakeNetwork,
) -> None:
    await fc_driver.preflight(make_spec(1))
    assert fc_driver.records == {}
    assert list(fc_driver.vms_dir.iterdir()) == []
    assert not calls_log.exists(), "no Firecracker process was started"
    assert not any(call[0] == "add_vm" for call in fake_net.calls)


@pytest.mark.parametrize(
    ("changes", "needles"),
    [
        ({"vcpus": -1}, ("vcpus -1", "1 to 32", "vcpus")),
        ({"vcpus": 33}, ("vcpus 33", "1 to 32", "fix:")),
        ({"memory_mib": 64}, ("memory_mib 64", "128", "fix:")),
        ({"memory_mib": 1 << 30}, ("memory", "host", "fix:")),
    ],
)
async def test_sizes_outside_firecracker_limits_are_refused(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    changes: dict[str, int],
    needles: tuple[str, ...],
) -> None:
    with pytest.raises(port.VmStartError) as err:
        await fc_driver.preflight(spec(make_spec(1), **changes))
    for needle in needles:
        assert needle in str(err.value)


def test_smt_rule() -> None:
    assert preflight.vcpu_problem(3, smt=True) is not None
    assert "even" in (preflight.vcpu_problem(3, smt=True) or "")
    assert preflight.vcpu_problem(3, smt=False) is None
    assert preflight.vcpu_problem(1, smt=True) is None
    assert preflight.vcpu_problem(32, smt=True) is None


@pytest.mark.parametrize(
    ("field", "needles"),
    [
        ("kernel_path", ("kernel_path", "not found", "blacksmith-mini image build")),
        ("rootfs_path", ("rootfs_path", "not found", "blacksmith-mini image build")),
        ("firecracker_bin", ("firecracker_bin", "not executable", "fix:")),
        ("jailer_bin", ("jailer_bin", "not executable", "fix:")),
    ],
)
async def test_missing_files_name_the_fix(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
    field: str,
    needles: tuple[str, ...],
) -> None:
    broken = settings.model_copy(update={field: tmp_path / "nope"})
    drv = FirecrackerDriver(settings=broken, data_dir=tmp_path / "d", net=fake_net)
    with pytest.raises(port.VmStartError) as err:
        await drv.preflight(make_spec(1))
    for needle in needles:
        assert needle in str(err.value)


async def test_not_enough_disk_space(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
) -> None:
    greedy = settings.model_copy(update={"min_free_disk_mib": 1 << 40})
    drv = FirecrackerDriver(settings=greedy, data_dir=tmp_path / "d", net=fake_net)
    with pytest.raises(port.VmStartError, match="not enough disk space"):
        await drv.preflight(make_spec(1))


async def test_network_not_ready(
    settings: FirecrackerSettings, tmp_path: Path, make_spec: Callable[..., port.VmSpec]
) -> None:
    drv = FirecrackerDriver(settings=settings, data_dir=tmp_path / "d", net=BrokenNetwork())
    with pytest.raises(port.VmStartError) as err:
        await drv.preflight(make_spec(1))
    assert "network is not ready" in str(err.value) and "table" in str(err.value)
    assert "fix:" in str(err.value)


async def test_start_rechecks_before_touching_the_host(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    calls_log: Path,
    fake_net: FakeNetwork,
) -> None:
    with pytest.raises(port.VmStartError, match="vcpus 33"):
        await fc_driver.start(spec(make_spec(2), vcpus=33))
    assert fc_driver.records == {}
    assert not calls_log.exists(), "refused before any Firecracker process ran"
    assert fake_net.interfaces == {}


async def test_host_memory_is_read_from_meminfo() -> None:
    total = preflight.host_memory_mib()
    assert total is not None and total > 128
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    assert abs(total - pages) < 64
