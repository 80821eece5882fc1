"""A pool with ``max_idle`` keeps idle VMs that follow its demand: the loop reads its jobs'
arrivals from the store once a minute, the planner starts idle VMs up to the target, the
policy (hence /api/status) carries the target and why; a pool without ``max_idle`` keeps
exactly ``min_idle``."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest

from blacksmith_mini.domain import model
from control import fakes

pytestmark = pytest.mark.anyio
ADAPTIVE = dataclasses.replace(fakes.POOL, min_idle=0, max_idle=6, max_vms=10)


def finished(job_id: int, *, at: float) -> model.Job:
    return dataclasses.replace(
        fakes.queued(job_id, at=at), status=model.JobStatus.COMPLETED, conclusion="success"
    )


async def bursts(
    w: fakes.World, *, size: int, ago: tuple[float, ...], first_id: int = 1000
) -> None:
    jobs = [
        finished(first_id + index * 100 + n, at=w.clock.now - seconds + n * 0.5)
        for index, seconds in enumerate(ago)
        for n in range(size)
    ]
    await w.store.save_jobs(jobs)


EVERY_2_MIN = (60.0, 180.0, 300.0, 420.0, 540.0, 660.0, 780.0)  # over a tenth of the instants


async def test_idle_vms_follow_recent_bursts(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path, pools=(ADAPTIVE,), max_vms=10)
    await bursts(w, size=3, ago=EVERY_2_MIN)
    await w.tick()
    (pool,) = w.loop.policy.pools
    assert pool.idle_target == 3 and pool.min_idle == 0
    assert "p90 3 jobs per 30 s refill (assumed) over the last 15 min" in (pool.idle_reason or "")
    assert len(w.active()) == 3  # started to be idle
    assert all(vm.job_id is None for vm in w.active())


async def test_the_target_is_recomputed_each_minute_and_capped(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path, pools=(ADAPTIVE,), max_vms=10)
    await bursts(w, size=2, ago=EVERY_2_MIN)
    await w.tick()
    assert w.loop.policy.pools[0].idle_target == 2
    bigger = tuple(seconds - 1 for seconds in EVERY_2_MIN)  # 9 more jobs next to each burst
    await bursts(w, size=9, ago=bigger, first_id=5000)
    await w.tick(advance=1.0)
    assert w.loop.policy.pools[0].idle_target == 2  # not before the minute is up
    w.clock.advance(60.0)
    await w.tick()
    (pool,) = w.loop.policy.pools
    assert pool.idle_target == 6 and "capped by max_idle 6" in (pool.idle_reason or "")


async def test_a_fixed_pool_keeps_min_idle(tmp_path: pathlib.Path) -> None:
    fixed = dataclasses.replace(fakes.POOL, min_idle=1, max_vms=10)
    w = await fakes.world(tmp_path, pools=(fixed,), max_vms=10)
    await bursts(w, size=5, ago=(120.0, 300.0, 480.0, 660.0))
    await w.tick()
    (pool,) = w.loop.policy.pools
    assert pool.idle_target is None and pool.warm == 1
    assert len(w.active()) == 1
