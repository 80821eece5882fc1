"""The loop's duty (``control/pacing.py``): after a tick it rests what the tick's computing owes.

The rest is ``computed x (1 / duty - 1)`` (none at duty 1); only the blocks counted as
computing count, not waiting; the running loop rests before each woken tick, the plan and the
view counted; a duty outside (0, 1] is refused, in the settings too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import time

import pydantic
import pytest

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.control import pacing
from control import fakes

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("computed", "duty", "rest"), [(0.02, 0.5, 0.02), (0.02, 0.25, 0.06), (0.02, 1.0, 0.0)]
)
def test_the_rest_keeps_the_computing_within_the_duty(
    computed: float, duty: float, rest: float
) -> None:
    assert pacing.rest_after(computed, duty=duty) == pytest.approx(rest)
    assert pacing.rest_after(0.0, duty=duty) == 0.0


async def test_a_pacer_rests_what_its_computing_owes_and_only_that() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    now = [0.0]
    pacer = pacing.Pacer(duty=0.25, sleep=sleep, clock=lambda: now[0])
    with pacer.computing():
        now[0] += 0.01  # computing, as far as the pacer can tell
    now[0] += 0.5  # waiting: not counted (counted, it would owe 1.5 s)
    await pacer.rest()
    assert len(slept) == 1 and 0.03 <= slept[0] < 1.5
    await pacer.rest()  # owed once: counting starts afresh
    assert len(slept) == 1
    off = pacing.Pacer(duty=1.0, sleep=sleep, clock=lambda: now[0])
    with off.computing():
        now[0] += 0.01
    await off.rest()
    assert len(slept) == 1


@pytest.mark.parametrize("duty", [0.0, -0.5, 1.5])
def test_a_duty_outside_zero_to_one_is_refused(duty: float) -> None:
    with pytest.raises(ValueError, match="duty"):
        pacing.Pacer(duty=duty)
    with pytest.raises(pydantic.ValidationError, match="tick_duty"):
        settings_mod.Settings(tick_duty=duty)


async def test_the_running_loop_rests_before_each_woken_tick(tmp_path: pathlib.Path) -> None:
    world = await fakes.world(tmp_path)
    loop = world.loop
    owed: list[float] = []

    async def sleep(seconds: float) -> None:  # recorded, not slept: the rest's length is
        owed.append(seconds)  # the pacer's test; here, that the loop takes it at all

    loop.config = dataclasses.replace(loop.config, tick_interval=3600.0)  # woken ticks only
    loop.pacer = pacing.Pacer(duty=0.5, sleep=sleep)
    task = asyncio.create_task(loop._run())
    try:
        deadline = time.monotonic() + 30
        while loop.loop_health.ticks < 4:
            assert time.monotonic() < deadline, "the loop did not tick when woken"
            loop.wake()
            await asyncio.sleep(0.01)
    finally:
        await loop.stop()
        task.cancel()
    assert len(owed) >= 3 and all(seconds > 0 for seconds in owed)  # the plan and view counted
