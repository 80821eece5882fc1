"""The fake Firecracker enforces the snapshot rules of v1.16.1, checked through our own API
client (``api.FirecrackerApi``): load only as the first configuring call (else
LoadSnapshotNotAllowed), create only while Paused, overrides only for the snapshot's
interfaces, a changed memory file refused, MMDS empty after a load."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from blacksmith_mini.vm.firecracker import api
from vm_firecracker.driving import fake_vmm

pytestmark = pytest.mark.anyio
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_firecracker.py"
Fresh = Callable[[str], AbstractAsyncContextManager[api.FirecrackerApi]]


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fresh:
    """``fresh(name)``: a new fake Firecracker process and our client on its socket."""
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    return lambda name: fake_vmm(tmp_path / f"{name}.sock", instance_id=name)


async def booted(client: api.FirecrackerApi, tmp_path: Path) -> None:
    kernel, disk = tmp_path / "vmlinux", tmp_path / "rootfs.ext4"
    kernel.write_bytes(b"k")
    disk.write_bytes(b"d")
    await client.put_machine_config(vcpus=2, memory_mib=64)
    await client.put_boot_source(kernel_image_path=str(kernel), boot_args="reboot=k")
    await client.put_root_drive(drive_id="rootfs", path_on_host=str(disk))
    await client.put_network_interface(
        iface_id="eth0", host_dev_name="tap0", guest_mac="06:00:ac:10:00:02"
    )
    await client.put_mmds_config(iface_ids=["eth0"])
    await client.put_mmds({"latest": {"meta-data": {"secret": "s"}}})
    await client.instance_start()


async def refused(call: object) -> str:
    with pytest.raises(api.FirecrackerApiError) as err:
        await call  # type: ignore[misc]
    assert err.value.status == 400
    return err.value.fault_message


async def template(fresh: Fresh, tmp_path: Path) -> tuple[str, str]:
    snap, mem = str(tmp_path / "vm.snap"), str(tmp_path / "vm.mem")
    async with fresh("tpl") as client:
        await booted(client, tmp_path)
        assert "not paused" in await refused(
            client.create_snapshot(snapshot_path=snap, mem_file_path=mem)
        )
        await client.pause()
        assert (await client.describe_instance())["state"] == "Paused"
        await client.create_snapshot(snapshot_path=snap, mem_file_path=mem)
    return snap, mem


async def test_create_only_while_paused_and_load_restores_paused_without_mmds(
    fresh: Fresh, tmp_path: Path
) -> None:
    snap, mem = await template(fresh, tmp_path)
    async with fresh("clone") as clone:
        await clone.put_logger(log_path=str(tmp_path / "fc.log"), level="Info")  # allowed
        await clone.load_snapshot(
            snapshot_path=snap,
            mem_file_path=mem,
            network_overrides={"eth0": "tap7"},
            clock_realtime=True,
        )
        assert (await clone.describe_instance())["state"] == "Paused"
        config = await clone.request("GET", "/vm/config")
        assert config["network-interfaces"][0]["host_dev_name"] == "tap7"
        assert await clone.get_mmds() == {}  # MMDS data is not in a snapshot
        assert "not supported after starting" in await refused(
            clone.put_machine_config(vcpus=2, memory_mib=64)
        )
        await clone.put_mmds({"latest": {"meta-data": {"generation": 1}}})
        await clone.resume()
        assert (await clone.describe_instance())["state"] == "Running"


async def test_load_after_any_boot_specific_call_is_not_allowed(
    fresh: Fresh, tmp_path: Path
) -> None:
    snap, mem = await template(fresh, tmp_path)
    async with fresh("late") as late:
        await late.put_machine_config(vcpus=2, memory_mib=64)
        message = await refused(
            late.load_snapshot(
                snapshot_path=snap, mem_file_path=mem, network_overrides={}, clock_realtime=False
            )
        )
        assert "Loading a microVM snapshot not allowed after configuring boot-specific" in message


async def test_overrides_only_for_the_snapshots_interfaces_and_the_memory_unchanged(
    fresh: Fresh, tmp_path: Path
) -> None:
    snap, mem = await template(fresh, tmp_path)
    async with fresh("wrong-iface") as wrong:
        assert "no network interface with id 'eth9'" in await refused(
            wrong.load_snapshot(
                snapshot_path=snap,
                mem_file_path=mem,
                network_overrides={"eth9": "tap9"},
                clock_realtime=False,
            )
        )
    with open(mem, "r+b") as handle:
        handle.write(b"changed")
    async with fresh("changed") as changed:
        assert "memory file does not match" in await refused(
            changed.load_snapshot(
                snapshot_path=snap, mem_file_path=mem, network_overrides={}, clock_realtime=False
            )
        )


async def test_pause_and_create_need_a_started_vm(fresh: Fresh, tmp_path: Path) -> None:
    async with fresh("cold") as cold:
        assert "not supported before starting" in await refused(cold.pause())
        assert "not supported before starting" in await refused(
            cold.create_snapshot(
                snapshot_path=str(tmp_path / "s"), mem_file_path=str(tmp_path / "m")
            )
        )
