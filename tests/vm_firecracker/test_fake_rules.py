"""The fake Firecracker enforces Firecracker's API rules (checked through our own API client)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from blacksmith_mini.vm.firecracker import api
from vm_firecracker.driving import fake_vmm

pytestmark = pytest.mark.anyio
FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_firecracker.py"


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[api.FirecrackerApi]:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    async with fake_vmm(tmp_path / "fc.sock") as found:
        yield found


async def fault(c: api.FirecrackerApi, method: str, path: str, body: dict[str, Any]) -> str:
    with pytest.raises(api.FirecrackerApiError) as err:
        await c.request(method, path, body)
    assert err.value.status in (400, 413)
    return err.value.fault_message


async def test_ids_unknown_fields_and_path_body_match(
    client: api.FirecrackerApi, tmp_path: Path
) -> None:
    disk = tmp_path / "d.ext4"
    disk.write_bytes(b"x")
    drive = {"drive_id": "root-fs", "path_on_host": str(disk), "is_root_device": True}
    assert "alphanumeric characters and underscores" in await fault(
        client, "PUT", "/drives/root-fs", drive
    )
    drive["drive_id"] = "other"
    assert "does not match" in await fault(client, "PUT", "/drives/rootfs", drive)
    assert "unknown field `colour`" in await fault(
        client, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "colour": 1}
    )
    assert "missing field `mem_size_mib`" in await fault(
        client, "PUT", "/machine-config", {"vcpu_count": 1}
    )
    assert "No such file" in await fault(
        client,
        "PUT",
        "/drives/rootfs",
        {"drive_id": "rootfs", "path_on_host": "/nope", "is_root_device": True},
    )


async def test_pre_and_post_boot_rules(client: api.FirecrackerApi, tmp_path: Path) -> None:
    assert "before starting" in await fault(
        client, "PUT", "/actions", {"action_type": "SendCtrlAltDel"}
    )
    assert "kernel configuration" in await fault(
        client, "PUT", "/actions", {"action_type": "InstanceStart"}
    )
    assert "does not correspond to any existing network interface" in await fault(
        client, "PUT", "/mmds/config", {"network_interfaces": ["eth0"], "version": "V2"}
    )
    kernel = tmp_path / "vmlinux"
    kernel.write_bytes(b"k")
    await client.put_boot_source(kernel_image_path=str(kernel), boot_args="reboot=k")
    assert (await client.describe_instance())["state"] == "Not started"
    await client.instance_start()
    assert (await client.describe_instance())["state"] == "Running"
    assert "after starting" in await fault(
        client, "PUT", "/actions", {"action_type": "InstanceStart"}
    )
    assert "after starting" in await fault(
        client, "PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128}
    )
    await client.put_mmds({"any": "time"})  # MMDS is writable at any time
    assert await client.get_mmds() == {"any": "time"}
    assert "larger than the limit" in await fault(client, "PUT", "/mmds", {"big": "x" * 60000})
    await client.request("PATCH", "/mmds", {"more": "y" * 40000})
    with pytest.raises(api.FirecrackerApiError) as err:
        await client.request("PATCH", "/mmds", {"even_more": "z" * 40000})
    assert err.value.status == 413 and "MMDS data store limit" in err.value.fault_message


async def test_smt_vcpu_rule(client: api.FirecrackerApi) -> None:
    assert "vCPU number is invalid" in await fault(
        client, "PUT", "/machine-config", {"vcpu_count": 3, "mem_size_mib": 128, "smt": True}
    )
    await client.put_machine_config(vcpus=3, memory_mib=256)  # fine without SMT


def test_bad_arguments_exit_153(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(FAKE), "--bogus"], capture_output=True)
    assert out.returncode == 153
    version = subprocess.run([sys.executable, str(FAKE), "--version"], capture_output=True)
    assert version.stdout.startswith(b"Firecracker v1.16.1")
    sock = tmp_path / "taken.sock"
    sock.write_text("")
    out = subprocess.run([sys.executable, str(FAKE), "--api-sock", str(sock)], capture_output=True)
    assert out.returncode == 1 and b"Failed to open the API socket" in out.stderr
