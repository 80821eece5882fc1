"""Performing the planner's actions: the one place where decisions become side effects.

Order matters for safety and leaks: a VM's name is persisted before its runner is registered;
an idle runner is deregistered at GitHub *before* its VM is stopped (a 422 means it just took a
job, so the stop is abandoned); a gone VM's resources are released by the driver.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING

from blacksmith_mini import logs
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import lifecycle, model
from blacksmith_mini.github import client, errors
from blacksmith_mini.vm import driver as vm_driver

if TYPE_CHECKING:
    from blacksmith_mini.control.reconciler import Reconciler

log = logging.getLogger(__name__)
S = model.VmState
SHUTDOWN_GRACE_SECONDS = 2.0


class Acts:
    def __init__(self, loop: Reconciler) -> None:
        self.loop = loop

    async def perform(self, action: act.Action, *, now: float) -> None:
        vm_id = getattr(action, "vm_id", None)
        job_id = getattr(action, "job_id", None)
        vm = self.loop.vms.get(vm_id) if vm_id is not None else None
        with logs.bound(vm_id=vm_id, job_id=job_id or (vm.job_id if vm else None)):
            await self._perform(action, now=now)

    async def _perform(self, action: act.Action, *, now: float) -> None:
        match action:
            case act.StartVm():
                await self.start_vm(action, now=now)
            case act.ResumeStart():
                vm = self.loop.vms.get(action.vm_id)
                if vm is not None and vm.state is S.PENDING:
                    await self.boot(vm)
            case act.StopVm():
                await self.stop_vm(action, now=now)
            case act.Transition():
                await self.transition(action, now=now)
            case act.DeregisterRunner():
                await self.deregister(action)

    # --- starting --------------------------------------------------------------------------

    async def start_vm(self, action: act.StartVm, *, now: float) -> None:
        loop = self.loop
        pool = next(p for p in loop.policy.pools if p.name == action.pool)
        vm = await loop.store.create_vm(
            pool=pool, scope=action.scope, prefix=loop.runner_prefix, now=now
        )
        loop.vms[vm.vm_id] = vm
        loop.spawns.add(now)
        loop.metrics.vm_starts.labels(vm.pool).inc()
        await loop.store.add_event(
            kind="vm.requested",
            message=f"VM {vm.vm_id} ({vm.name}) requested in pool {pool.name}: {action.reason}",
            at=now,
            vm_id=vm.vm_id,
        )
        await self._mark_requested(vm, now=now)
        await self.boot(vm)

    async def _mark_requested(self, vm: model.Vm, *, now: float) -> None:
        """Stamp 'VM requested' on the oldest queued job this VM's pool and scope serve."""
        from blacksmith_mini.domain import labels, planner

        for job in sorted(self.loop.jobs.values(), key=lambda j: j.created_at):
            if job.status is not model.JobStatus.QUEUED or job.vm_requested_at is not None:
                continue
            found = labels.match(job.labels, self.loop.policy.pools)
            if found.pool is None or found.pool.name != vm.pool:
                continue
            if planner.demand_key(job, found.pool, self.loop.policy) != (vm.pool, vm.scope):
                continue
            stamped = dataclasses.replace(job, vm_requested_at=now)
            self.loop.jobs[job.id] = stamped
            await self.loop.store.save_jobs([stamped])
            return

    async def boot(self, vm: model.Vm) -> None:
        """Preflight, register the runner (idempotently, by name) and start the VM.

        Nothing is registered before the driver's preflight passes. Any failure (preflight,
        registration: 403, 404, 422 group full, an outage; the driver's start) ends the VM as
        ``start_failed`` and backs its pool off, so a start that keeps failing is retried
        ever later instead of registering a runner every tick.
        """
        loop = self.loop
        spec = vm_driver.VmSpec(
            vm_id=vm.vm_id,
            name=vm.name,
            pool=vm.pool,
            labels=vm.labels,
            vcpus=vm.vcpus,
            memory_mib=vm.memory_mib,
            jit_config="",
            ssh_public_key=loop.config.ssh_public_key,
        )
        try:
            await loop.driver.preflight(spec)
        except vm_driver.VmStartError as exc:
            await self._start_failed(vm, exc, stage="preflight")
            return
        try:
            if vm.runner_id is not None:  # an earlier attempt registered it; its config is lost
                await self._delete_runner_quietly(vm.scope, vm.runner_id)
            registration = await self._register(vm)
        except errors.GitHubError as exc:
            await self._start_failed(vm, exc, stage="runner registration")
            return
        vm = dataclasses.replace(vm, runner_id=registration.runner_id)
        loop.vms[vm.vm_id] = vm
        await loop.store.save_vm(vm)
        spec = dataclasses.replace(spec, jit_config=registration.encoded_jit_config)
        try:
            observation = await loop.driver.start(spec)
        except vm_driver.VmStartError as exc:
            await self._start_failed(vm, exc, stage="start")
            return
        loop.start_succeeded(pool=vm.pool)
        booted = lifecycle.transition(vm, S.BOOTING, now=loop.clock())
        booted = dataclasses.replace(booted, pid=observation.pid, ip=observation.ip)
        await self._save(booted, note=f"started (pid {observation.pid})")

    async def _start_failed(self, vm: model.Vm, exc: Exception, *, stage: str) -> None:
        loop = self.loop
        now = loop.clock()
        held = loop.start_failed(pool=vm.pool, reason=f"{stage}: {exc}", now=now)
        message = held.describe(now)
        log.warning("%s", message)
        await loop.store.add_event(kind="vm.start_failed", message=message, at=now, vm_id=vm.vm_id)
        await self._finish(vm, reason=model.DeathReason.START_FAILED, now=now)

    async def _register(self, vm: model.Vm) -> client.Registration:
        loop = self.loop
        try:
            return await loop.github.register_runner(
                vm.scope,
                name=vm.name,
                labels=vm.labels,
                runner_group_id=loop.config.runner_group_id,
            )
        except errors.RunnerNameTaken:
            # Our earlier POST succeeded but we never saw the answer: find it, drop it, retry.
            existing = await loop.github.runner_by_name(vm.scope, vm.name)
            if existing is not None:
                await loop.github.delete_runner(vm.scope, existing.id)
            return await loop.github.register_runner(
                vm.scope,
                name=vm.name,
                labels=vm.labels,
                runner_group_id=loop.config.runner_group_id,
            )

    # --- stopping --------------------------------------------------------------------------

    async def stop_vm(self, action: act.StopVm, *, now: float) -> bool:
        """Stop a VM; False when it was not stopped because its runner just took a job.

        A busy VM is stopped only when forced (an operator's explicit choice: its job fails);
        the planner never asks. An idle or booting VM's runner is deregistered at GitHub first
        (a 422 means it just took a job: the stop is abandoned).
        """
        loop = self.loop
        vm = loop.vms.get(action.vm_id)
        if vm is None:
            return True
        if vm.state is S.BUSY and not action.force:
            log.error("refusing to stop busy VM %s", vm.vm_id)  # the planner never asks this
            return False
        if vm.state is S.PENDING:
            await self.stop_vm_now(vm, reason=action.reason)
            return True
        if vm.state in (S.BOOTING, S.IDLE) and not action.force:
            fresh = (await loop.driver.observe()).get(vm.vm_id)
            if fresh is not None and fresh.job_started:
                log.info("VM %s took a job just now; not stopping it", vm.vm_id)
                return False
            if vm.runner_id is not None and not await self._deregister_before_stop(vm):
                return False
        if vm.state is not S.STOPPING:
            stopping = lifecycle.transition(vm, S.STOPPING, now=now, reason=action.reason)
            await self._save(stopping, note=f"stopping: {action.reason.value}")
        await loop.driver.stop(vm.vm_id, force=action.force)
        return True

    async def _deregister_before_stop(self, vm: model.Vm) -> bool:
        """Delete an idle runner at GitHub first; False if GitHub says it is busy now."""
        assert vm.runner_id is not None
        try:
            await self.loop.github.delete_runner(vm.scope, vm.runner_id)
        except errors.RunnerBusy:
            log.info("runner %s is busy at GitHub; keeping VM %s", vm.name, vm.vm_id)
            return False
        except errors.GitHubError:
            if vm.state is S.IDLE:
                raise  # an online runner may take a job any moment: retry when GitHub answers
            log.info("GitHub unreachable; stopping VM %s whose runner never came online", vm.vm_id)
        return True

    async def stop_all(self, *, reason: model.DeathReason, drain_seconds: float = 0.0) -> None:
        """Shutdown: stop VMs without a job at once, give busy ones ``drain_seconds`` to
        finish, then stop the rest (SIGKILL after a short grace) and record them gone."""
        loop = self.loop
        busy = {vm.vm_id for vm in loop.vms.values() if vm.state is S.BUSY}
        for vm in list(loop.vms.values()):
            if vm.vm_id not in busy and vm.state is not S.PENDING:
                stop = act.StopVm(vm_id=vm.vm_id, reason=reason)
                with contextlib.suppress(Exception):  # deregister first, as every stop does
                    if not await self.stop_vm(stop, now=loop.clock()):
                        busy.add(vm.vm_id)  # it took a job at the last moment: let it drain
        await self._wait_exits(busy, seconds=drain_seconds)
        for vm_id in busy:
            with contextlib.suppress(Exception):
                await loop.driver.stop(vm_id, force=False)
        await self._wait_exits(set(loop.vms), seconds=SHUTDOWN_GRACE_SECONDS)
        finished = {
            vm_id for vm_id, seen in (await loop.driver.observe()).items() if seen.job_finished
        }
        for vm in list(loop.vms.values()):
            with contextlib.suppress(Exception):
                await loop.driver.stop(vm.vm_id, force=True)
            why = model.DeathReason.JOB_FINISHED if vm.vm_id in finished else reason
            with contextlib.suppress(Exception):
                await self._finish(vm, reason=why, now=loop.clock(), github_timeout=2.0)

    async def _wait_exits(self, vm_ids: set[int], *, seconds: float) -> None:
        deadline = self.loop.clock() + seconds
        while vm_ids and self.loop.clock() < deadline:
            seen = await self.loop.driver.observe()
            if not any(seen[v].alive for v in vm_ids if v in seen):
                return
            await asyncio.sleep(0.1)

    # --- recording -------------------------------------------------------------------------

    async def transition(self, action: act.Transition, *, now: float) -> None:
        vm = self.loop.vms.get(action.vm_id)
        if vm is None:
            return
        if action.target is S.GONE:
            await self._finish(vm, reason=action.reason, now=now, note=action.note)
            return
        if vm.state is action.target:
            if action.job_id is not None and vm.job_id != action.job_id:
                await self._save(dataclasses.replace(vm, job_id=action.job_id), note=action.note)
            return
        moved = lifecycle.transition(
            vm, action.target, now=now, reason=action.reason, job_id=action.job_id
        )
        await self._save(moved, note=action.note)

    async def _finish(
        self,
        vm: model.Vm,
        *,
        reason: model.DeathReason | None,
        now: float,
        note: str = "",
        github_timeout: float | None = None,
    ) -> None:
        """Move a VM to gone: release its resources, drop its runner, record it."""
        loop = self.loop
        gone = lifecycle.transition(vm, S.GONE, now=now, reason=reason)
        await loop.driver.release(vm.vm_id)
        if vm.runner_id is not None and not vm.ran_job:
            coroutine = self._delete_runner_quietly(vm.scope, vm.runner_id)
            if github_timeout is None:
                await coroutine
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(coroutine, timeout=github_timeout)
        # Persist first: if the write fails (disk full, database locked) the VM stays active in
        # memory, the next tick sees it gone again and records it then.
        await loop.store.save_vm(gone)
        loop.vms.pop(vm.vm_id, None)
        loop.gone.insert(0, gone)
        del loop.gone[100:]
        loop.deaths.add(now)
        reason_label = gone.death_reason.value if gone.death_reason else "unknown"
        loop.metrics.vm_deaths.labels(vm.pool, reason_label).inc()
        reason_text = gone.death_reason.value if gone.death_reason else "unknown"
        await loop.store.add_event(
            kind="vm.gone",
            message=f"VM {vm.vm_id} gone: {reason_text}" + (f" ({note})" if note else ""),
            at=now,
            vm_id=vm.vm_id,
            job_id=vm.job_id,
        )

    async def stop_vm_now(self, vm: model.Vm, *, reason: model.DeathReason) -> None:
        """Stop a pending VM at once (nothing boots yet): drop its runner, record it gone."""
        if vm.runner_id is not None:
            await self._delete_runner_quietly(vm.scope, vm.runner_id)
        await self.loop.driver.stop(vm.vm_id, force=True)
        await self._finish(vm, reason=reason, now=self.loop.clock())

    async def save(self, vm: model.Vm, *, note: str) -> None:
        await self._save(vm, note=note)

    async def _save(self, vm: model.Vm, *, note: str) -> None:
        before = self.loop.vms.get(vm.vm_id)
        await self.loop.store.save_vm(vm)  # persist first; memory follows only on success
        if vm.ready_at is not None and (before is None or before.ready_at is None):
            self.loop.metrics.boot.observe(max(0.0, vm.ready_at - vm.created_at))
        self.loop.vms[vm.vm_id] = vm
        await self.loop.store.add_event(
            kind=f"vm.{vm.state.value}",
            message=f"VM {vm.vm_id} {vm.state.value}" + (f": {note}" if note else ""),
            at=self.loop.clock(),
            vm_id=vm.vm_id,
            job_id=vm.job_id,
        )

    async def _delete_runner_quietly(self, scope: str, runner_id: int) -> None:
        try:
            await self.loop.github.delete_runner(scope, runner_id)
        except errors.GitHubError as exc:
            log.info(
                "could not delete runner %s now (%s); the runner sweep will retry", runner_id, exc
            )

    async def deregister(self, action: act.DeregisterRunner) -> None:
        try:
            deleted = await self.loop.github.delete_runner(action.scope, action.runner_id)
        except errors.RunnerBusy:
            return
        if deleted:
            await self.loop.store.add_event(
                kind="runner.deregistered",
                message=f"runner {action.name} deregistered: {action.reason}",
                at=self.loop.clock(),
            )
