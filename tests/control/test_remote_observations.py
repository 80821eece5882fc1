"""The remote driver hands the loop the same observation object for a VM whose host reported
a change of other VMs: a report changes a few VMs of a hundred, and the loop's facts are
reused for an observation it saw before (``LoopState.planner_facts``)."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from blacksmith_mini.store import engine, observed, repository
from blacksmith_mini.vm.remote import wakeups, wire
from blacksmith_mini.vm.remote.driver import RemoteDriver

pytestmark = pytest.mark.anyio


def seen(vm_id: int, **changes: Any) -> dict[str, Any]:
    fields = {"vm_id": vm_id, "name": f"bm-{vm_id}", "alive": True, "started_at": 1.0}
    return wire.Observation(**(fields | changes)).model_dump(mode="json")


async def test_a_vm_whose_observation_did_not_change_keeps_its_object(
    tmp_path: pathlib.Path,
) -> None:
    store = repository.Store(engine.sqlite_url(tmp_path))
    await store.open()
    try:
        token = await store.add_host("h1", now=1.0)
        both = {"7": seen(7), "8": seen(8)}
        session = await store.hello("h1", report={}, observations=both, now=2.0)
        beat = await store.heartbeat(token, session=session, observations=None, acks=[], now=2.5)
        assert beat is not None
        driver = RemoteDriver(store=store, wakeups=wakeups.LocalWakeups(), clock=lambda: 3.0)
        first = dict(await driver.observe())
        change = observed.Delta(base=beat.observed, changed={"8": seen(8, detail="warm")}, gone=[])
        await store.heartbeat(
            token, session=session, observations=None, acks=[], now=3.0, delta=change
        )
        second = await driver.observe()
        assert second[7] is first[7]
        assert second[8] is not first[8] and second[8].detail == "warm"
        assert (await driver.observe())[8] is second[8]  # nothing new: the same again
    finally:
        await store.close()
