"""Starts by restoring a template snapshot, through the real driver against the fake: the
template VM is booted until its agent waits, paused and snapshotted; a start then loads it
(``snapshot/load`` first, MMDS after, resume) with its own disk and tap, and the guest agent
gives each clone its own identity; no template, or a failed restore, boots cold with the
reason in the observation, leaving nothing behind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from fake_network import FakeNetwork
from mini_broker import MiniBroker

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver
from vm_firecracker.driving import opened, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture
async def snapping(
    settings: FirecrackerSettings, fake_net: FakeNetwork, tmp_path: Path
) -> AsyncIterator[FirecrackerDriver]:
    on = settings.model_copy(update={"snapshots": True})
    async with opened(on, net=fake_net, data_dir=tmp_path / "data") as drv:
        yield drv


def calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def identity(drv: FirecrackerDriver, vm_id: int) -> tuple[str, str]:
    root = drv.records[vm_id].dir / "guest-root" / "etc"
    return (root / "hostname").read_text().strip(), (root / "machine-id").read_text().strip()


async def test_clones_restore_the_template_and_each_gets_its_own_identity(
    snapping: FirecrackerDriver,
    calls_log: Path,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    spec = make_spec(1, jit_config=broker.jit_config("bm-pool-1"))
    first = await snapping.start(spec)  # no template yet: cold, and one is built meanwhile
    assert first.detail is not None and first.detail.startswith("cold boot: template")
    await wait_for(lambda: snapping.templates.ready_for(spec) is not None, timeout=30)
    template = snapping.templates.ready_for(spec)
    assert template is not None
    before = len(calls(calls_log))
    clones = []
    for vm_id in (2, 3):
        seen = await snapping.start(
            make_spec(vm_id, jit_config=broker.jit_config(f"bm-pool-{vm_id}"))
        )
        assert seen.detail == f"restored from template {template.name}"
        clones.append(vm_id)
    made = calls(calls_log)[before:]
    loads = [c for c in made if c["path"] == "/snapshot/load"]
    assert len(loads) == 2
    assert not any(c["path"] == "/actions" for c in made)  # no InstanceStart for a clone
    taps = {c["body"]["network_overrides"][0]["host_dev_name"] for c in loads}
    assert taps == {snapping.records[v].net.vm_tap for v in clones}
    for vm_id in clones:
        await wait_for(lambda v=vm_id: snapping.observe_one(v).runner_online, timeout=30)
    assert identity(snapping, 2) != identity(snapping, 3)
    console = await snapping.console_tail(2)  # (the fake restores a fresh agent: the
    # template's wait and its resume are tests/image/test_guest_template.py's)
    assert "random seed: 32 bytes" in console and "wall clock: in step" in console
    assert identity(snapping, 2)[0] == "bm-pool-2"
    given = [snapping.records[v].public_mmds["latest"]["meta-data"]["blacksmith"] for v in clones]
    for field in ("entropy", "generation", "hostname"):
        assert given[0][field] != given[1][field], field  # no two clones share them
    for vm_id in clones:
        mmds = snapping.records[vm_id].public_mmds["latest"]["meta-data"]["blacksmith"]
        assert mmds["generation"] and "entropy" in mmds and "runner_jit_config" not in mmds


async def test_each_clone_runs_in_its_own_namespace_with_the_templates_address(
    snapping: FirecrackerDriver,
    fake_net: FakeNetwork,
    calls_log: Path,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    template = await snapping.templates.build(make_spec(1), slot=9)
    built = calls(calls_log)
    booted = next(c for c in built if c["path"] == "/boot-source")["body"]["boot_args"]
    assert "ip=10.254.254.2::10.254.254.1:255.255.255.252::eth0:off" in booted
    for vm_id in (2, 3):
        seen = await snapping.start(
            make_spec(vm_id, jit_config=broker.jit_config(f"bm-pool-{vm_id}"))
        )
        assert seen.detail == f"restored from template {template.name}"
    two, three = (snapping.records[v].net for v in (2, 3))
    assert two.vm_guest_ip == three.vm_guest_ip == "10.254.254.2" and two.mac == three.mac
    assert two.guest_ip != three.guest_ip and None is not two.netns != three.netns
    assert {two.netns, three.netns} <= fake_net.namespaces
    ran_in = {ns for what, ns in fake_net.calls if what == "command"}
    assert {two.netns, three.netns} <= ran_in  # each VMM started in its VM's namespace
    given = [snapping.records[v].public_mmds["latest"]["meta-data"]["blacksmith"] for v in (2, 3)]
    assert "network" not in given[0]  # the address is the template's: nothing to change
    for vm_id in (2, 3):
        await wait_for(lambda v=vm_id: snapping.observe_one(v).runner_online, timeout=30)
        await snapping.release(vm_id)
    assert not {two.netns, three.netns} & fake_net.namespaces


async def test_a_sweep_keeps_the_network_of_a_template_being_built(
    snapping: FirecrackerDriver,
    fake_net: FakeNetwork,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_HANG", "PUT /snapshot/create")  # the build stays in flight
    spec = make_spec(1)
    snapping.templates.ensure(spec, slot=9)
    await wait_for(lambda: bool(snapping.templates.leases), timeout=30)
    building = next(iter(snapping.templates.leases.values()))
    await wait_for(lambda: building.netns in fake_net.namespaces, timeout=30)
    await snapping.sweep([])
    assert building.netns in fake_net.namespaces and building.tap in fake_net.interfaces
    await wait_for(lambda: not snapping.templates.leases, timeout=30)  # the create timed out
    assert building.netns not in fake_net.namespaces  # the build's own cleanup
    assert "failed" in snapping.templates.why_not(spec)


async def test_a_corrupt_snapshot_boots_cold_with_the_reason(
    snapping: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
    fake_net: FakeNetwork,
) -> None:
    spec = make_spec(1, jit_config=broker.jit_config("bm-pool-1"))
    template = await snapping.templates.build(spec, slot=9)
    with template.memory.open("r+b") as handle:
        handle.write(b"corrupt")
    seen = await snapping.start(make_spec(2, jit_config=broker.jit_config("bm-pool-2")))
    assert seen.detail is not None and "cold boot: restoring" in seen.detail
    assert "memory file does not match" in seen.detail
    await wait_for(lambda: snapping.observe_one(2).runner_online, timeout=30)
    await snapping.release(2)
    assert "bmtap9" not in fake_net.interfaces  # the template VM's tap is gone


async def test_snapshots_off_never_touch_templates(
    fc_driver: FirecrackerDriver, make_spec: Callable[..., port.VmSpec], broker: MiniBroker
) -> None:
    seen = await fc_driver.start(make_spec(1, jit_config=broker.jit_config("bm-pool-1")))
    assert seen.detail is None
    assert not (fc_driver.data_dir / "templates").exists()


async def test_a_restore_that_hangs_boots_cold(
    snapping: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await snapping.templates.build(make_spec(1), slot=9)
    monkeypatch.setenv("FAKE_FC_HANG", "PUT /snapshot/load")  # the clones' VMMs only
    seen = await snapping.start(make_spec(2, jit_config=broker.jit_config("bm-pool-2")))
    assert seen.detail is not None and "cold boot: restoring" in seen.detail
    await wait_for(lambda: snapping.observe_one(2).runner_online, timeout=30)


async def test_a_template_rebuilt_while_its_clones_run(
    snapping: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
    settings: FirecrackerSettings,
) -> None:
    old = await snapping.templates.build(make_spec(1), slot=9)
    running = await snapping.start(make_spec(2, jit_config=broker.jit_config("bm-pool-2")))
    assert running.detail == f"restored from template {old.name}"
    image = settings.rootfs_path
    image.write_bytes(image.read_bytes() + b"a new image")  # the image changed: a new key
    cold = await snapping.start(make_spec(3, jit_config=broker.jit_config("bm-pool-3")))
    assert cold.detail is not None and cold.detail.startswith("cold boot: template")
    await wait_for(lambda: snapping.templates.ready_for(make_spec(4)) is not None, timeout=30)
    assert not old.dir.exists()  # the stale template is gone ...
    await wait_for(lambda: snapping.observe_one(2).runner_online, timeout=30)
    assert snapping.observe_one(2).alive  # ... and its clone runs on
    fresh = await snapping.start(make_spec(4, jit_config=broker.jit_config("bm-pool-4")))
    assert fresh.detail is not None and fresh.detail.startswith("restored from template")
    assert fresh.detail != running.detail


async def test_a_clone_whose_agent_never_reports_is_stopped_at_the_boot_timeout(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quick = settings.model_copy(update={"snapshots": True, "boot_timeout": 2.0})
    async with opened(quick, net=fake_net, data_dir=tmp_path / "data") as drv:
        await drv.templates.build(make_spec(1), slot=9)
        silent = tmp_path / "silent-agent.py"
        silent.write_text("import time\ntime.sleep(3600)\n")
        monkeypatch.setenv("FAKE_FC_AGENT", str(silent))  # the restored guest's agent
        seen = await drv.start(make_spec(2))
        assert seen.detail is not None and seen.detail.startswith("restored from template")
        await wait_for(lambda: not drv.observe_one(2).alive, timeout=30)
        assert "acknowledge" in (drv.observe_one(2).detail or "")
        await drv.release(2)
        assert not (tmp_path / "data" / "vms" / "bm-pool-2").exists()


async def test_a_template_made_by_another_firecracker_is_refused(
    snapping: FirecrackerDriver, make_spec: Callable[..., port.VmSpec]
) -> None:
    spec = make_spec(1)
    await snapping.templates.build(spec, slot=9)
    assert snapping.templates.ready_for(spec) is not None
    snapping.templates._version = "Firecracker v1.17.0"  # upgraded since it was made
    assert snapping.templates.ready_for(spec) is None
    found = snapping.templates.for_start(spec, used_slots=set())
    assert isinstance(found, str) and found.startswith("cold boot: template")
    await snapping.templates.close()


async def test_a_start_takes_the_network_wired_ahead_and_another_is_wired_after(
    snapping: FirecrackerDriver,
    fake_net: FakeNetwork,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    await wait_for(lambda: snapping.spares.ready is not None, timeout=30)  # wired at open
    spare = snapping.spares.ready
    assert spare is not None and spare.netns == f"{spare.tap.replace(str(spare.slot), '')}_s0"
    fake_net.calls.clear()
    await snapping.start(make_spec(1, jit_config=broker.jit_config("bm-pool-1")))
    assert snapping.records[1].net == spare
    wired_during_start = [call for call in fake_net.calls if call == ("add_vm", spare.tap)]
    assert not wired_during_start  # the spare's network was ready: nothing to wire
    await wait_for(lambda: snapping.spares.ready is not None, timeout=30)
    after = snapping.spares.ready
    assert after is not None and after.slot != spare.slot
    assert after.slot not in {r.net.slot for r in snapping.records.values()}
    await snapping.sweep([1])  # a sweep keeps the spare's network
    assert after.netns in fake_net.namespaces
    await snapping.close()
    assert after.netns not in fake_net.namespaces  # closing removes it
