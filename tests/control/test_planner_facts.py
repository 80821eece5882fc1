"""The loop hands the planner each VM's facts, made once per driver observation."""

from __future__ import annotations

import dataclasses
import pathlib

from blacksmith_mini.control import metrics as metrics_mod
from blacksmith_mini.control import state as loop_state
from blacksmith_mini.store import engine, repository
from blacksmith_mini.vm import driver as vm_driver


def _seen(vm_id: int, **changes: object) -> vm_driver.VmObservation:
    found = vm_driver.VmObservation(vm_id=vm_id, name=f"bm-{vm_id}", alive=True, started_at=1.0)
    return dataclasses.replace(found, **changes)


def test_facts_are_made_again_only_for_observations_the_driver_replaced(
    tmp_path: pathlib.Path,
) -> None:
    store = repository.Store(engine.sqlite_url(tmp_path))
    held = loop_state.LoopState(store=store, metrics=metrics_mod.Metrics(), clock=lambda: 0.0)
    steady, busy = _seen(1), _seen(2)
    held.observed({1: steady, 2: busy})
    first = held.planner_facts()
    assert first[1] == loop_state.facts_of(steady)
    assert not first[2].job_started

    busy_now = _seen(2, job_started=True)  # the driver's new observation of VM 2
    held.observed({1: steady, 2: busy_now, 3: _seen(3, alive=False)})
    second = held.planner_facts()
    assert second[1] is first[1], "an unchanged observation keeps its facts (no new object)"
    assert second[2].job_started, "a replaced observation's facts are made again"
    assert not second[3].alive
    assert set(second) == {1, 2, 3}

    held.observed({2: busy_now})
    assert set(held.planner_facts()) == {2}, "a VM the driver no longer sees has no facts"
