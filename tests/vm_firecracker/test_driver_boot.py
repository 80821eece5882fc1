"""The driver against the fake Firecracker: boot sequence, errors, MMDS handling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from fake_network import FakeNetwork
from mini_broker import MiniBroker

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver
from vm_firecracker.driving import wait_for

pytestmark = pytest.mark.anyio


def read_calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_full_boot_in_documented_order(
    fc_driver: FirecrackerDriver,
    calls_log: Path,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    obs = await fc_driver.start(make_spec(7))
    assert obs.alive and obs.ip == "172.16.0.2" and obs.pid
    calls = read_calls(calls_log)
    order = [f"{c['method']} {c['path']}" for c in calls if c["method"] != "GET"]
    assert order == [
        "PUT /logger",
        "PUT /metrics",
        "PUT /machine-config",
        "PUT /boot-source",
        "PUT /drives/rootfs",
        "PUT /network-interfaces/eth0",
        "PUT /mmds/config",
        "PUT /mmds",
        "PUT /actions",
    ]
    body = {f"{c['method']} {c['path']}": c["body"] for c in calls}
    boot_args = body["PUT /boot-source"]["boot_args"]
    assert "reboot=k" in boot_args
    assert "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off" in boot_args
    assert body["PUT /network-interfaces/eth0"] == {
        "iface_id": "eth0",
        "host_dev_name": "bmtap0",
        "guest_mac": "06:00:AC:10:00:02",
    }
    assert body["PUT /machine-config"] == {"vcpu_count": 2, "mem_size_mib": 512, "smt": False}
    assert body["PUT /mmds/config"] == {"network_interfaces": ["eth0"], "version": "V2"}
    assert body["PUT /actions"] == {"action_type": "InstanceStart"}
    # a second start for the same vm_id is a no-op that returns its state
    again = await fc_driver.start(make_spec(7))
    assert again.pid == obs.pid
    assert sum(1 for c in read_calls(calls_log) if c["path"] == "/actions") == 1


async def test_second_vm_gets_next_slot(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    a = await fc_driver.start(make_spec(1))
    b = await fc_driver.start(make_spec(2))
    assert (a.ip, b.ip) == ("172.16.0.2", "172.16.0.6")


async def test_fault_message_is_surfaced_and_everything_released(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
    fake_net: FakeNetwork,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FAKE_FC_FAIL", "PUT /drives/rootfs")
    with pytest.raises(port.VmStartError) as err:
        await fc_driver.start(make_spec(3))
    text = str(err.value)
    assert "PUT /drives/rootfs -> 400" in text
    assert "Injected fault for PUT /drives/rootfs" in text
    assert fc_driver.records == {}
    assert not (tmp_path / "data" / "vms" / "bm-pool-3").exists()
    assert fake_net.interfaces == {}


async def test_missing_kernel_names_the_fix(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
) -> None:
    broken = settings.model_copy(update={"kernel_path": tmp_path / "nope"})
    drv = FirecrackerDriver(settings=broken, data_dir=tmp_path / "d", net=fake_net)
    with pytest.raises(port.VmStartError, match="blacksmith-mini image build"):
        await drv.start(make_spec(1))


async def test_mmds_has_no_token_and_is_wiped_after_ack(
    fc_driver: FirecrackerDriver,
    calls_log: Path,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    jit = broker.jit_config("bm-pool-4")
    await fc_driver.start(make_spec(4, jit_config=jit))
    first = next(c for c in read_calls(calls_log) if c["path"] == "/mmds")
    data = first["body"]["latest"]["meta-data"]["blacksmith"]
    assert data["runner_jit_config"] == jit
    assert not any("token" in key for key in data)
    record = fc_driver.records[4]
    await wait_for(lambda: record.mmds_wiped)
    puts = [c for c in read_calls(calls_log) if c["path"] == "/mmds" and c["method"] == "PUT"]
    assert len(puts) == 2
    remainder = puts[1]["body"]["latest"]["meta-data"]["blacksmith"]
    assert "runner_jit_config" not in remainder
    assert remainder["name"] == "bm-pool-4"
    console = await fc_driver.console_tail(4)
    assert "blacksmith-agent: boot-data-read" in console
    assert jit not in console
    await wait_for(lambda: fc_driver.observe_one(record.vm_id).runner_online)


async def test_console_is_bounded(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    await fc_driver.start(make_spec(5, jit_config=broker.jit_config("bm-pool-5")))
    record = fc_driver.records[5]
    await wait_for(lambda: fc_driver.observe_one(record.vm_id).runner_online)
    assert (record.dir / "console.log").stat().st_size <= fc_driver.settings.console_max_bytes


async def test_a_start_cancelled_during_the_disk_copy_leaves_nothing(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
    calls_log: Path,
) -> None:
    base = tmp_path / "dense.ext4"
    block = bytes(range(1, 256)) * 4200
    with base.open("wb") as f:
        for _ in range(384):
            f.write(block[: 2**20])
    dense = settings.model_copy(update={"rootfs_path": base, "rootfs_strategy": "sparse-copy"})
    drv = FirecrackerDriver(settings=dense, data_dir=tmp_path / "d", net=fake_net)
    await drv.open()
    vm_dir = tmp_path / "d" / "vms" / "bm-pool-6"
    try:
        cancelled_at: list[float] = []

        async def cancel_when_copying(scope: anyio.CancelScope) -> None:
            with anyio.fail_after(10):
                while not any(p.name.startswith("rootfs") for p in _files(vm_dir)):
                    await anyio.sleep(0.002)
            cancelled_at.append(time.monotonic())
            scope.cancel()

        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                tg.start_soon(cancel_when_copying, scope)
                await drv.start(make_spec(6))
            returned_at = time.monotonic()
        assert scope.cancelled_caught
        assert returned_at - cancelled_at[0] < 1.0, "cancellation waited for the copy"
        assert drv.records == {}
        assert not vm_dir.exists(), sorted(p.name for p in _files(vm_dir))
        assert fake_net.interfaces == {} and fake_net.elements == set()
        assert not calls_log.exists(), "no Firecracker was started"
    finally:
        for vm_id in list(drv.records):
            await drv.release(vm_id)
        await drv.close()


def _files(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []


async def test_the_cache_boot_data_reaches_the_guest_at_its_gateway_and_is_wiped(
    fc_driver: FirecrackerDriver,
    calls_log: Path,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    """The control plane's ``cache`` (its URL naming ``{host_ip}``) goes into MMDS with the
    VM's own gateway, and leaves MMDS with the JIT config once the agent acknowledges."""
    import dataclasses

    cache = {
        "url": "http://{host_ip}:8010/",
        "token": "bmc1.eyJ2bSI6IjUifQ.bWFj",
        "fallback_url": "https://results-receiver.actions.githubusercontent.com/",
    }
    spec = dataclasses.replace(make_spec(5, jit_config=broker.jit_config("bm-pool-5")), cache=cache)
    await fc_driver.start(spec)
    record = fc_driver.records[5]
    first = next(c for c in read_calls(calls_log) if c["path"] == "/mmds")
    given = first["body"]["latest"]["meta-data"]["blacksmith"]["cache"]
    assert given["url"] == f"http://{record.net.host_ip}:8010/"
    assert given["token"] == cache["token"]
    await wait_for(lambda: record.mmds_wiped)
    puts = [c for c in read_calls(calls_log) if c["path"] == "/mmds" and c["method"] == "PUT"]
    assert "cache" not in puts[-1]["body"]["latest"]["meta-data"]["blacksmith"]
    console = await fc_driver.console_tail(5)
    assert cache["token"] not in console
