"""Stopping, releasing, sweeping and adopting VMs, against the fake Firecracker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from fake_network import FakeNetwork
from mini_broker import MiniBroker

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker import proc
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver
from vm_firecracker.driving import wait_for

pytestmark = pytest.mark.anyio


async def observe(drv: FirecrackerDriver, vm_id: int) -> port.VmObservation:
    return (await drv.observe())[vm_id]


async def test_graceful_stop_reboots_the_guest(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    await fc_driver.start(make_spec(1, name="r1", jit_config=broker.jit_config("r1")))
    record = fc_driver.records[1]
    fc_driver.settings = fc_driver.settings.model_copy(update={"stop_grace_seconds": 8.0})
    await wait_for(lambda: fc_driver.observe_one(record.vm_id).runner_online)
    await fc_driver.stop(1)
    await wait_for(lambda: not fc_driver.observe_one(record.vm_id).alive, timeout=8)
    obs = await observe(fc_driver, 1)
    assert obs.exit_code == 0 and obs.exit_signal is None and obs.ended_at
    assert "Received ctrl-alt-del" in await fc_driver.console_tail(1)
    assert record.kill_sent_at is None  # no escalation was needed


async def test_stop_escalates_to_kill_after_grace(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    monkeypatch.setenv("FAKE_FC_IGNORE_CTRL_ALT_DEL", "1")
    await fc_driver.start(make_spec(2))
    record = fc_driver.records[2]
    await fc_driver.stop(2)
    await anyio.sleep(0.5)
    assert (await observe(fc_driver, 2)).alive  # still within the 1 s grace period
    await wait_for(lambda: not fc_driver.observe_one(record.vm_id).alive, timeout=5)
    obs = await observe(fc_driver, 2)
    assert obs.exit_signal == signal.SIGKILL and record.kill_sent_at is not None


async def test_force_stop_kills_at_once(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    obs = await fc_driver.start(make_spec(3))
    await fc_driver.stop(3, force=True)
    after = await observe(fc_driver, 3)
    assert not after.alive and after.exit_signal == signal.SIGKILL
    # SIGKILL is delivered at once, but the kernel reaps the process a moment later
    pid = obs.pid or 0
    await wait_for(lambda: proc.start_ticks(pid) is None or proc.is_zombie(pid), timeout=5)
    await fc_driver.stop(3)  # stopping a stopped VM is a no-op
    await fc_driver.stop(99)  # and so is an unknown one


async def test_release_is_ordered_and_idempotent(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
    fake_net: FakeNetwork,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    await fc_driver.start(make_spec(4))
    record = fc_driver.records[4]
    rootfs, vm_dir = Path(record.rootfs), record.dir
    assert rootfs.exists() and (vm_dir / "api.sock").exists()
    await fc_driver.release(4)  # a live VM is killed first
    await fc_driver.release(4)
    assert 4 not in await fc_driver.observe()
    assert not rootfs.exists() and not vm_dir.exists()
    assert not proc.is_alive(record.supervisor_pid, record.supervisor_ticks)
    calls = fake_net.calls
    assert calls.count(("remove_vm", "bmtap0")) == 1
    assert fake_net.interfaces == {}


async def test_sweep_removes_orphans(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
    fake_net: FakeNetwork,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    await fc_driver.start(make_spec(5))  # live
    await fc_driver.start(make_spec(6))  # not live any more
    net = fake_net
    net.interfaces["bmtap77"] = None  # a leaked tap
    net.namespaces.add("bmtap_bm9xgone")
    sock = tmp_path / "data" / "vms" / "ghost" / "api.sock"
    sock.parent.mkdir(parents=True)
    orphan = subprocess.Popen(  # a firecracker whose supervisor and record are gone
        [
            sys.executable,
            str(fc_driver.settings.firecracker_bin),
            "--api-sock",
            str(sock),
            "--id",
            "bm9xghost",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    await wait_for(sock.exists)
    removed = await fc_driver.sweep([5])
    text = "\n".join(removed)
    assert "vm bm-pool-6 (id 6)" in text
    assert "interface bmtap77" in text and "bmtap_bm9xgone" in text
    assert "firecracker bm9xghost" in text
    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert set(fc_driver.records) == {5}
    assert sorted(net.interfaces) == ["bmtap0"]
    assert await fc_driver.sweep([5]) == []


async def test_adoption_after_restart(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    first = FirecrackerDriver(
        settings=settings, data_dir=tmp_path / "d", net=fake_net, poll_interval=0.05
    )
    await first.open()
    await first.start(make_spec(8, name="r8", jit_config=broker.jit_config("r8")))
    pid = first.records[8].supervisor_pid
    await first.close()  # the control plane goes away; the VM keeps running
    second = FirecrackerDriver(
        settings=settings, data_dir=tmp_path / "d", net=fake_net, poll_interval=0.05
    )
    await second.open()
    try:
        assert second.records[8].supervisor_pid == pid
        await wait_for(lambda: second.observe_one(8).runner_online)
        assert second.records[8].mmds_wiped
        assert (await observe(second, 8)).alive
        broker.give_job("r8", conclusion="success")
        await wait_for(lambda: not second.observe_one(8).alive)
        obs = await observe(second, 8)
        assert obs.job_started and obs.job_finished and obs.exit_code == 0
    finally:
        await second.release(8)
        await second.close()


async def test_keep_on_failure_defers_a_graceful_stop(
    settings: FirecrackerSettings,
    fake_net: FakeNetwork,
    tmp_path: Path,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    keep = settings.model_copy(update={"keep_on_failure_minutes": 0.05})  # 3 s
    drv = FirecrackerDriver(
        settings=keep, data_dir=tmp_path / "d", net=fake_net, poll_interval=0.05
    )
    await drv.open()
    try:
        await drv.start(make_spec(9, name="r9", jit_config=broker.jit_config("r9")))
        record = drv.records[9]
        broker.give_job("r9", conclusion="failure")
        await wait_for(lambda: drv.observe_one(record.vm_id).job_finished)
        await wait_for(lambda: record.keep_until is not None)
        await drv.stop(9)
        await anyio.sleep(1.0)
        obs = await observe(drv, 9)
        assert obs.alive and "kept for debugging" in (obs.detail or "")
        assert "keeping the VM" in await drv.console_tail(9)
        await wait_for(lambda: not drv.observe_one(record.vm_id).alive, timeout=10)
    finally:
        await drv.release(9)
        await drv.close()


def test_no_stray_processes_left() -> None:
    """Guard: nothing of ours survives the tests above (run last in this module)."""
    mine = proc.find_by_cmdline("fake_firecracker.py", "--api-sock", "/vms/")
    assert [p for p, _ in mine if os.getpgid(p) != os.getpgrp()] == []
