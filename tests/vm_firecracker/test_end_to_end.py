"""Driver + fake Firecracker + the real guest agent + the simulated runner, start to finish."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
from mini_broker import MiniBroker

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver

pytestmark = pytest.mark.anyio


async def test_one_job_from_boot_to_exit(
    fc_driver: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
) -> None:
    changes: list[int] = []
    fc_driver.on_change(lambda: changes.append(1))
    spec = make_spec(21, name="bm-e2e-21", jit_config=broker.jit_config("bm-e2e-21"))
    first = await fc_driver.start(spec)
    assert first.alive and not first.runner_online

    async def until(
        check: Callable[[port.VmObservation], bool], timeout: float = 20
    ) -> port.VmObservation:
        with anyio.fail_after(timeout):
            while True:
                obs = (await fc_driver.observe())[21]
                if check(obs):
                    return obs
                await anyio.sleep(0.05)

    online = await until(lambda o: o.runner_online)
    assert online.alive and not online.job_started
    assert fc_driver.records[21].mmds_wiped  # the agent waits for the wipe before the runner
    broker.give_job("bm-e2e-21", name="test (ubuntu)", duration=0.3, conclusion="success")
    started = await until(lambda o: o.job_started)
    assert started.alive
    done = await until(lambda o: not o.alive)
    assert done.job_finished and done.exit_code == 0 and done.ended_at
    assert broker.completed == [{"runner": "bm-e2e-21", "conclusion": "success"}]
    console = await fc_driver.console_tail(21)
    for line in (
        "Listening for Jobs",
        "Running job: test (ubuntu)",
        "completed with result: Succeeded",
        "blacksmith-agent: runner exited with code 0",
        "reboot: Restarting system",
    ):
        assert line in console
    assert spec.jit_config not in console
    assert changes  # the control loop was woken up
    await fc_driver.release(21)
    assert await fc_driver.observe() == {}
