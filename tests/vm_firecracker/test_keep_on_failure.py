"""Keep on failure, through the real driver and the fake: kept, reported, reachable, released."""

from __future__ import annotations

import shlex
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
import typer
from fake_network import FakeNetwork
from mini_broker import MiniBroker
from typer.testing import CliRunner

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker import commands, proc
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver
from vm_firecracker.driving import opened, wait_for

pytestmark = pytest.mark.anyio
KEEP_SECONDS = 3.0


@pytest.fixture
async def keeping(
    settings: FirecrackerSettings, fake_net: FakeNetwork, tmp_path: Path
) -> AsyncIterator[FirecrackerDriver]:
    keep = settings.model_copy(
        update={"keep_on_failure_minutes": KEEP_SECONDS / 60, "stop_grace_seconds": 0.5}
    )
    async with opened(keep, net=fake_net, data_dir=tmp_path / "d") as drv:
        yield drv


def ssh_print(drv: FirecrackerDriver, vm_id: int) -> tuple[int, str]:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """The root, as in cli.py."""

    commands.register(app)
    result = CliRunner().invoke(
        app, ["ssh", str(vm_id), "--print", "--data-dir", str(drv.data_dir)]
    )
    return result.exit_code, result.output


async def fail_a_job(
    drv: FirecrackerDriver, broker: MiniBroker, make_spec: Callable[..., port.VmSpec], vm_id: int
) -> port.VmObservation:
    name = f"r{vm_id}"
    await drv.start(make_spec(vm_id, name=name, jit_config=broker.jit_config(name)))
    broker.give_job(name, conclusion="failure")
    await wait_for(lambda: drv.observe_one(vm_id).kept_until is not None)
    return drv.observe_one(vm_id)


async def test_a_failed_jobs_vm_is_kept_reported_then_released(
    keeping: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
    fake_net: FakeNetwork,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("BLACKSMITH_DATA_DIR", "BLACKSMITH_DATABASE_URL", "BLACKSMITH_VM__DRIVER"):
        monkeypatch.delenv(name, raising=False)
    obs = await fail_a_job(keeping, broker, make_spec, 9)
    assert obs.alive and obs.job_finished and obs.kept_until is not None
    assert 0 < obs.kept_until - time.time() <= KEEP_SECONDS + 0.5
    assert "kept for debugging until" in (obs.detail or "")
    record = keeping.records[9]

    # The control plane's `stopping` deadline: a graceful stop is deferred to the keep's end,
    # well past the stop grace period (the 30 s of the real loop, scaled down).
    await keeping.stop(9)
    await anyio.sleep(keeping.settings.stop_grace_seconds + 0.5)
    still = keeping.observe_one(9)
    assert still.alive and still.kept_until == obs.kept_until
    assert record.kill_sent_at is None

    # `blacksmith-mini ssh` reaches the kept VM at its guest address.
    code, output = ssh_print(keeping, 9)
    assert code == 0, output
    argv = shlex.split(output)
    assert argv[0] == "ssh" and argv[-1] == f"runner@{obs.ip}"

    # When the keep ends the VM exits (the guest reboots) and nothing is kept any more.
    await wait_for(lambda: not keeping.observe_one(9).alive, timeout=KEEP_SECONDS + 8)
    ended = keeping.observe_one(9)
    assert ended.kept_until is None and ended.ended_at is not None
    assert ended.ended_at >= obs.kept_until - 0.5
    assert "keeping the VM" in await keeping.console_tail(9)
    code, output = ssh_print(keeping, 9)
    assert code == 2 and "not running" in output and "keep_on_failure_minutes" in output

    await keeping.release(9)
    assert 9 not in await keeping.observe()
    assert fake_net.interfaces == {} and fake_net.elements == set()
    assert not record.dir.exists() and not Path(record.rootfs).exists()
    assert list(keeping.vms_dir.iterdir()) == []
    assert not proc.is_alive(record.supervisor_pid, record.supervisor_ticks)


async def test_force_stop_ends_a_kept_vm_at_once(
    keeping: FirecrackerDriver, make_spec: Callable[..., port.VmSpec], broker: MiniBroker
) -> None:
    obs = await fail_a_job(keeping, broker, make_spec, 10)
    assert obs.kept_until is not None
    await keeping.stop(10, force=True)  # the operator
    after = keeping.observe_one(10)
    assert not after.alive and after.exit_signal == signal.SIGKILL and after.kept_until is None


async def test_the_driver_ends_the_keep_even_if_the_guest_does_not(
    keeping: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A guest that neither reboots by itself nor obeys ctrl-alt-del (an old or broken image).
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")
    monkeypatch.setenv("FAKE_FC_IGNORE_CTRL_ALT_DEL", "1")
    await keeping.start(make_spec(11))
    record = keeping.records[11]
    kept = record.keep_until = time.time() + 0.5  # as the watcher sets it when a job fails
    await keeping.stop(11)  # deferred
    assert keeping.observe_one(11).kept_until == kept
    await wait_for(lambda: not keeping.observe_one(11).alive, timeout=8)
    ended = keeping.observe_one(11)
    assert ended.kept_until is None and ended.exit_signal == signal.SIGKILL
    assert record.kill_sent_at is not None
    assert record.kill_sent_at >= kept + keeping.settings.stop_grace_seconds


async def test_a_succeeded_job_is_not_kept(
    keeping: FirecrackerDriver, make_spec: Callable[..., port.VmSpec], broker: MiniBroker
) -> None:
    await keeping.start(make_spec(12, name="r12", jit_config=broker.jit_config("r12")))
    broker.give_job("r12", conclusion="success")
    await wait_for(lambda: not keeping.observe_one(12).alive)
    assert keeping.observe_one(12).kept_until is None
