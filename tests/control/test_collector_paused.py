"""A tick's queue sync and ``plan()`` run with the garbage collector paused (``collector``), as
``bench/hosts_plan.py`` measures them; the collector is on again after, and after an error."""

from __future__ import annotations

import gc
import pathlib
from typing import Any

import pytest

from blacksmith_mini import collector
from blacksmith_mini.control import reconciler
from control import fakes

pytestmark = pytest.mark.anyio


async def test_the_plan_runs_with_the_collector_paused(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    seen: list[bool] = []
    real = reconciler.planner.plan

    def plan(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(reconciler.planner, "plan", plan)
    assert gc.isenabled()
    await w.tick()
    assert seen == [False]
    assert gc.isenabled()
    assert w.active(), "the tick planned and acted as before"
    await w.store.close()


def test_the_collector_is_on_again_after_an_error() -> None:
    with pytest.raises(RuntimeError), collector.paused():
        assert not gc.isenabled()
        raise RuntimeError("planning failed")
    assert gc.isenabled()


def test_a_paused_collector_stays_paused() -> None:
    gc.disable()
    try:
        with collector.paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
