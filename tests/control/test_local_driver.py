"""The local driver across a control-plane crash: a VM whose start was cut short by a SIGKILL
(the supervisor spawned, its record not yet written by the driver) is still seen alive by the
restarted driver and is killed when released, never reported "crashed" while its runner runs
a job, never left running."""

from __future__ import annotations

import pathlib
import sys

import pytest

from blacksmith_mini.vm import driver, local, procs
from server.harness import wait_for

pytestmark = pytest.mark.anyio
SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def spec(vm_id: int) -> driver.VmSpec:
    return driver.VmSpec(
        vm_id=vm_id,
        name=f"runner-{vm_id}",
        pool="default",
        labels=("self-hosted",),
        vcpus=1,
        memory_mib=512,
        jit_config="secret-jit",
    )


async def test_a_start_cut_short_is_adopted_alive_and_killed_on_release(
    tmp_path: pathlib.Path,
) -> None:
    first = local.LocalDriver(data_dir=tmp_path, runner_command=SLEEPER)
    await first.open()
    started = await first.start(spec(7))
    await first.close()
    assert started.pid is not None
    vm_dir = tmp_path / "vms" / "runner-7"
    # The state a SIGKILL between spawning the supervisor and recording it leaves behind:
    # the driver's own record is gone (the supervisor records itself; wait for it).
    (vm_dir / "supervisor.json").unlink()
    wait_for(
        lambda: (vm_dir / "supervisor.json").exists(), timeout=20, what="the supervisor's record"
    )

    second = local.LocalDriver(data_dir=tmp_path, runner_command=SLEEPER)
    await second.open()
    try:
        seen = (await second.observe())[7]
        assert seen.alive, "a running VM must not be reported dead after a restart"
        assert seen.pid == started.pid
        await second.release(7)
        wait_for(
            lambda: not procs.is_same_process(started.pid or 0, None),
            timeout=20,
            what="the VM gone",
        )
    finally:
        procs.kill_group(started.pid)
        await second.close()


async def test_the_records_are_written_whole(tmp_path: pathlib.Path) -> None:
    """No record is ever read half-written: each is replaced atomically (no temporary left)."""
    driver_ = local.LocalDriver(data_dir=tmp_path, runner_command=SLEEPER)
    await driver_.open()
    try:
        found = await driver_.start(spec(8))
        vm_dir = tmp_path / "vms" / "runner-8"
        assert found.alive
        assert sorted(p.name for p in vm_dir.iterdir() if p.name.endswith(".tmp")) == []
        await driver_.release(8)
        assert found.pid is not None
        wait_for(
            lambda: not procs.is_same_process(found.pid or 0, None), timeout=20, what="the VM gone"
        )
    finally:
        await driver_.close()
