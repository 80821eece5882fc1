"""Every stop (planner, operator, shutdown) deregisters an idle runner at GitHub first: one that
takes a job at the last moment (GitHub answers 422) is not killed. Persist-before-memory and
adoption at start-up, one tick at a time."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from blacksmith_mini.control import operator
from blacksmith_mini.domain import model
from control import fakes

pytestmark = pytest.mark.anyio
S = model.VmState


async def idle_vm(w: fakes.World) -> model.Vm:
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    await w.tick()
    (vm,) = w.active()
    w.driver.set(vm.vm_id, runner_online=True)
    done = model.Job(
        **{
            **fakes.queued(1).__dict__,
            "status": model.JobStatus.COMPLETED,
            "conclusion": "success",
            "runner_name": "someone-else",
        }
    )
    w.github.jobs["acme/app"] = [done]  # another runner took the job: this VM is surplus
    await w.tick()
    assert w.loop.state.vms[vm.vm_id].state is S.IDLE
    return w.loop.state.vms[vm.vm_id]


async def test_planner_stop_spares_a_runner_that_just_took_a_job(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    vm = await idle_vm(w)
    assert vm.runner_id is not None
    w.github.busy_at_github.add(vm.runner_id)  # took a job; our driver has not seen it yet
    for _ in range(40):  # past the 30 s surplus grace
        await w.tick()
    assert w.driver.stopped == [] and w.loop.state.vms[vm.vm_id].state is S.IDLE
    w.github.busy_at_github.clear()
    await w.tick()
    assert w.driver.stopped == [(vm.vm_id, False)]
    assert vm.runner_id in w.github.deleted
    await w.store.close()


async def operator_stop(w: fakes.World, vm_id: int) -> asyncio.Task[model.Vm]:
    """Request a stop as the API does, and let the request be persisted."""
    task = asyncio.create_task(
        w.loop.operator.stop_vm(vm_id, force=False, actor="admin", reason="test")
    )
    for _ in range(100):
        if vm_id in w.loop.operator.apply(w.loop.base_policy).stop_requests:
            break
        await asyncio.sleep(0.01)
    return task


async def test_operator_stop_spares_a_runner_that_just_took_a_job(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    vm = await idle_vm(w)
    assert vm.runner_id is not None
    w.github.busy_at_github.add(vm.runner_id)  # it took a job; the VM has not said so yet
    request = await operator_stop(w, vm.vm_id)
    await w.tick()  # the planner asks for the stop; GitHub refuses to deregister: not stopped
    assert w.driver.stopped == [] and w.loop.state.vms[vm.vm_id].state is S.IDLE
    w.driver.set(vm.vm_id, job_started=True)  # now the VM reports the job
    await w.tick()
    with pytest.raises(operator.Refused) as refused:
        await request
    assert refused.value.status == 409 and "took a job just now" in str(refused.value)
    assert w.driver.stopped == [] and w.loop.state.vms[vm.vm_id].state is S.BUSY
    await w.store.close()


async def test_operator_stop_deregisters_then_stops_an_idle_vm(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    vm = await idle_vm(w)
    request = await operator_stop(w, vm.vm_id)
    await w.tick()
    stopped = await request
    assert stopped.state is S.STOPPING
    assert stopped.stop_reason is model.DeathReason.STOPPED_BY_OPERATOR
    assert w.driver.stopped == [(vm.vm_id, False)] and vm.runner_id in w.github.deleted
    await w.tick()  # the VM exited: it is gone and its request forgotten
    assert vm.vm_id not in w.loop.state.vms
    assert w.loop.operator.apply(w.loop.base_policy).stop_requests == {}
    await w.store.close()


async def test_shutdown_spares_a_runner_that_just_took_a_job(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    vm = await idle_vm(w)
    assert vm.runner_id is not None
    w.github.busy_at_github.add(vm.runner_id)
    w.loop.config = w.loop.config.__class__(on_shutdown="drain", drain_seconds=0.0)
    at_drain: list[list[tuple[int, bool]]] = []
    w.driver.on_observe = lambda: at_drain.append(list(w.driver.stopped))
    await w.loop.acts.stop_all(reason=model.DeathReason.SHUTDOWN, drain_seconds=0.0)
    # not stopped as an idle VM before the drain: it drained like a busy one
    assert at_drain and at_drain[0] == []
    assert vm.runner_id not in w.github.deleted
    await w.store.close()


async def test_a_failed_write_leaves_memory_as_it_was(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now)]
    await w.tick()
    (vm,) = w.active()
    w.driver.set(vm.vm_id, runner_online=True)
    real_save = w.store.save_vm

    async def failing(_: model.Vm) -> None:
        raise OSError(28, "No space left on device")

    w.store.save_vm = failing  # type: ignore[method-assign]
    await w.tick()  # booting -> idle fails to persist
    assert w.loop.state.vms[vm.vm_id].state is S.BOOTING
    w.store.save_vm = real_save  # type: ignore[method-assign]
    await w.tick()  # retried from the same facts
    assert w.loop.state.vms[vm.vm_id].state is S.IDLE
    assert (await w.store.vm(vm.vm_id)).state is S.IDLE  # type: ignore[union-attr]
    await w.store.close()


async def test_start_up_adopts_live_vms_and_ends_vanished_ones(tmp_path: pathlib.Path) -> None:
    w = await fakes.world(tmp_path)
    w.github.jobs["acme/app"] = [fakes.queued(1, at=w.clock.now), fakes.queued(2, at=w.clock.now)]
    await w.tick()
    first, second = w.active()
    w.driver.set(first.vm_id, runner_online=True, job_started=True)
    await w.tick()
    survivor = fakes.FakeDriver()
    survivor.vms = {first.vm_id: w.driver.vms[first.vm_id]}  # the second VM vanished
    again = fakes.World(
        loop=w.loop.__class__(
            policy=w.loop.base_policy,
            store=w.store,
            github=w.github,
            driver=survivor,
            config=w.loop.config,
            clock=w.clock,
        ),
        github=w.github,
        driver=survivor,
        store=w.store,
        clock=w.clock,
    )
    await again.loop.start(background=False)
    assert again.loop.runner_prefix == w.loop.runner_prefix  # the installation id is kept
    await again.tick()
    assert again.loop.state.vms[first.vm_id].state is S.BUSY  # adopted, still running its job
    assert again.loop.state.gone[0].vm_id == second.vm_id
    await w.store.close()
