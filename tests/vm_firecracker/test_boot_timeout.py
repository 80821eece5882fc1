"""``boot_timeout``: a guest whose agent never acknowledges its boot data is stopped, with why."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from fake_network import FakeNetwork
from mini_broker import MiniBroker

from blacksmith_mini.vm import driver as port
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings
from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver
from vm_firecracker.driving import opened, wait_for

pytestmark = pytest.mark.anyio
BOOT_TIMEOUT = 1.0


@pytest.fixture
async def impatient(
    settings: FirecrackerSettings, fake_net: FakeNetwork, tmp_path: Path
) -> AsyncIterator[FirecrackerDriver]:
    impatient = settings.model_copy(update={"boot_timeout": BOOT_TIMEOUT})
    async with opened(impatient, net=fake_net, data_dir=tmp_path / "d") as drv:
        yield drv


async def test_a_guest_without_agent_is_stopped_after_boot_timeout(
    impatient: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_NO_GUEST", "1")  # the guest never runs its agent
    monkeypatch.setenv("FAKE_FC_IGNORE_CTRL_ALT_DEL", "1")
    started = time.time()
    assert (await impatient.start(make_spec(1))).alive
    await wait_for(lambda: not impatient.observe_one(1).alive, timeout=BOOT_TIMEOUT + 8)
    obs = impatient.observe_one(1)
    assert obs.ended_at is not None and obs.ended_at - started >= BOOT_TIMEOUT
    detail = obs.detail or ""
    assert "did not acknowledge its boot data" in detail
    assert f"boot_timeout = {BOOT_TIMEOUT:g}" in detail
    assert "console" in detail  # where to look


async def test_a_slow_guest_within_boot_timeout_is_left_alone(
    impatient: FirecrackerDriver,
    make_spec: Callable[..., port.VmSpec],
    broker: MiniBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_FC_BOOT_DELAY", "0.3")
    await impatient.start(make_spec(2, name="r2", jit_config=broker.jit_config("r2")))
    await wait_for(lambda: impatient.observe_one(2).runner_online)
    await anyio.sleep(BOOT_TIMEOUT + 0.3)
    obs = impatient.observe_one(2)
    assert obs.alive and obs.detail is None
