"""Performing the planner's actions: the one place where decisions become side effects.

Only this module calls ``lifecycle.transition`` and the driver's mutating methods (``start``,
``stop``, ``release``, ``sweep``); ``tests/test_architecture.py`` checks it. Order matters for
safety and leaks: a VM's name is persisted before its runner is registered; nothing is
registered before the driver's preflight passes; an idle runner is deregistered at GitHub
*before* its VM is stopped (a 422 means it just took a job, so the stop is abandoned); a gone
VM's resources are released by the driver. Memory changes only through ``LoopState``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from blacksmith_mini import logs
from blacksmith_mini.control import config as config_mod
from blacksmith_mini.control import state as state_mod
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import lifecycle, model
from blacksmith_mini.github import client, errors, port
from blacksmith_mini.vm import driver as vm_driver

log = logging.getLogger(__name__)
S = model.VmState
SHUTDOWN_GRACE_SECONDS = 2.0


class Acts:
    def __init__(
        self,
        *,
        state: state_mod.LoopState,
        github: port.GitHubPort,
        driver: vm_driver.VmDriver,
        config: config_mod.LoopConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.github = github
        self.driver = driver
        self.config = config
        self.clock = clock
        self.runner_prefix = config.runner_prefix  # set once by start_up()
        self._runner_group_id: int | None = None if config.runner_group else config.runner_group_id

    # --- start-up --------------------------------------------------------------------------

    async def start_up(self, *, runner_prefix: str, org: str | None) -> list[str]:
        """Before the first tick: resolve the runner group, open the driver, and remove what
        belongs to no active VM (each removal described). Adoption is the planner's: VMs the
        driver still runs are observed as they are."""
        self.runner_prefix = runner_prefix
        if self._runner_group_id is None and org and self.config.runner_group:
            self._runner_group_id = await self.github.runner_group_id(org, self.config.runner_group)
        await self.driver.open()
        return await self.driver.sweep(list(self.state.vms))

    async def perform(self, action: act.Action, *, policy: model.Policy, now: float) -> None:
        vm_id = getattr(action, "vm_id", None)
        job_id = getattr(action, "job_id", None)
        vm = self.state.vms.get(vm_id) if vm_id is not None else None
        with logs.bound(vm_id=vm_id, job_id=job_id or (vm.job_id if vm else None)):
            match action:
                case act.StartVm():
                    held = self.state.backoff.get(action.pool)
                    if held is not None and held.blocks(now):
                        return  # an earlier start in this tick failed: the pool backs off now
                    pool = next(p for p in policy.pools if p.name == action.pool)
                    await self.start_vm(action, pool=pool, now=now)
                case act.ResumeStart():
                    if vm is not None and vm.state is S.PENDING:
                        await self.boot(vm)
                case act.StopVm():
                    await self.stop_vm(action, now=now)
                case act.Transition():
                    await self.transition(action, now=now)
                case act.DeregisterRunner():
                    await self.deregister(action)

    # --- starting --------------------------------------------------------------------------

    async def start_vm(self, action: act.StartVm, *, pool: model.Pool, now: float) -> None:
        vm = await self.state.create_vm(
            pool=pool,
            scope=action.scope,
            prefix=self.runner_prefix,
            reason=action.reason,
            now=now,
            host=action.host,
        )
        await self.state.stamp_requested(action.job_id, now=now)
        await self.boot(vm)

    async def boot(self, vm: model.Vm) -> None:
        """Preflight, register the runner (idempotently, by name) and start the VM.

        Nothing is registered before the driver's preflight passes. Any failure (preflight,
        registration: 403, 404, 422 group full, an outage; the driver's start) ends the VM as
        ``start_failed`` and backs its pool off, so a start that keeps failing is retried
        ever later instead of registering a runner every tick.
        """
        spec = vm_driver.VmSpec(
            vm_id=vm.vm_id,
            name=vm.name,
            pool=vm.pool,
            labels=vm.labels,
            vcpus=vm.vcpus,
            memory_mib=vm.memory_mib,
            jit_config="",
            ssh_public_key=self.config.ssh_public_key,
            host=vm.host,
            cache=self.config.cache_boot(vm.vm_id) if self.config.cache_boot else None,
        )
        try:
            await self.driver.preflight(spec)
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
        await self.state.put_vm(vm)
        spec = dataclasses.replace(spec, jit_config=registration.encoded_jit_config)
        try:
            observation = await self.driver.start(spec)
        except vm_driver.VmStartError as exc:
            await self._start_failed(vm, exc, stage="start")
            return
        self.state.start_succeeded(pool=vm.pool)
        booted = lifecycle.transition(vm, S.BOOTING, now=self.clock())
        booted = dataclasses.replace(booted, pid=observation.pid, ip=observation.ip)
        how = f"; {observation.detail}" if observation.detail else ""  # restored, or why cold
        await self.state.save_vm(booted, note=f"started (pid {observation.pid}{how})")

    async def _start_failed(self, vm: model.Vm, exc: Exception, *, stage: str) -> None:
        now = self.clock()
        until = exc.until if isinstance(exc, errors.RateLimited) and exc.until > now else None
        held = self.state.start_failed(
            pool=vm.pool, reason=f"{stage}: {exc}", now=now, not_before=until
        )
        message = held.describe(now)
        log.warning("%s", message)
        await self.state.store.add_event(
            kind="vm.start_failed", message=message, at=now, vm_id=vm.vm_id
        )
        await self._finish(vm, reason=model.DeathReason.START_FAILED, now=now)

    async def _register(self, vm: model.Vm) -> client.Registration:
        group = self._runner_group_id or self.config.runner_group_id
        try:
            return await self.github.register_runner(
                vm.scope, name=vm.name, labels=vm.labels, runner_group_id=group
            )
        except errors.RunnerNameTaken:
            # Our earlier POST succeeded but we never saw the answer: find it, drop it, retry.
            existing = await self.github.runner_by_name(vm.scope, vm.name)
            if existing is not None:
                await self.github.delete_runner(vm.scope, existing.id)
            return await self.github.register_runner(
                vm.scope, name=vm.name, labels=vm.labels, runner_group_id=group
            )

    # --- stopping --------------------------------------------------------------------------

    async def stop_vm(self, action: act.StopVm, *, now: float) -> bool:
        """Stop a VM; False when it was not stopped because its runner just took a job.

        A busy VM is stopped only when forced (an operator's explicit choice: its job fails);
        the planner never asks otherwise. An idle or booting VM's runner is deregistered at
        GitHub first (a 422 means it just took a job: the stop is abandoned). The driver is
        asked afresh whether the VM's runner took a job: GitHub's own ``busy`` lags, so the
        VM's report is the better last-moment check (hence a second ``observe`` in a tick).
        """
        vm = self.state.vms.get(action.vm_id)
        if vm is None:
            return True
        if vm.state is S.BUSY and not action.force:
            log.error("refusing to stop busy VM %s", vm.vm_id)
            return False
        if vm.state is S.PENDING:
            await self._stop_pending(vm, reason=action.reason)
            return True
        if vm.state in (S.BOOTING, S.IDLE) and not action.force:
            fresh = (await self.driver.observe()).get(vm.vm_id)
            if fresh is not None and fresh.job_started:
                log.info("VM %s took a job just now; not stopping it", vm.vm_id)
                return False
            if vm.runner_id is not None and not await self._deregister_before_stop(vm):
                return False
        if vm.state is not S.STOPPING:
            stopping = lifecycle.transition(vm, S.STOPPING, now=now, reason=action.reason)
            await self.state.save_vm(stopping, note=f"stopping: {action.reason.value}")
        await self.driver.stop(vm.vm_id, force=action.force)
        return True

    async def _deregister_before_stop(self, vm: model.Vm) -> bool:
        """Delete an idle runner at GitHub first; False if GitHub says it is busy now."""
        assert vm.runner_id is not None
        try:
            await self.github.delete_runner(vm.scope, vm.runner_id)
        except errors.RunnerBusy:
            log.info("runner %s is busy at GitHub; keeping VM %s", vm.name, vm.vm_id)
            return False
        except errors.GitHubError:
            if vm.state is S.IDLE:
                raise  # an online runner may take a job any moment: retry when GitHub answers
            log.info("GitHub unreachable; stopping VM %s whose runner never came online", vm.vm_id)
        return True

    async def _stop_pending(self, vm: model.Vm, *, reason: model.DeathReason) -> None:
        """Stop a pending VM at once (nothing boots yet): drop its runner, record it gone."""
        if vm.runner_id is not None:
            await self._delete_runner_quietly(vm.scope, vm.runner_id)
        await self.driver.stop(vm.vm_id, force=True)
        await self._finish(vm, reason=reason, now=self.clock())

    async def stop_all(self, *, reason: model.DeathReason, drain_seconds: float = 0.0) -> None:
        """Shutdown (drain): stop VMs without a job at once (deregistering first), give busy
        ones ``drain_seconds`` to finish, then stop the rest and record them gone."""
        vms = self.state.vms
        busy = {vm.vm_id for vm in vms.values() if vm.state is S.BUSY}
        for vm in list(vms.values()):
            if vm.vm_id not in busy and vm.state is not S.PENDING:
                stop = act.StopVm(vm_id=vm.vm_id, reason=reason)
                with contextlib.suppress(Exception):  # deregister first, as every stop does
                    if not await self.stop_vm(stop, now=self.clock()):
                        busy.add(vm.vm_id)  # it took a job at the last moment: let it drain
        await self._wait_exits(busy, seconds=drain_seconds)
        for vm_id in busy:
            with contextlib.suppress(Exception):
                await self.driver.stop(vm_id, force=False)
        await self._wait_exits(set(vms), seconds=SHUTDOWN_GRACE_SECONDS)
        finished = {v for v, seen in (await self.driver.observe()).items() if seen.job_finished}
        for vm in list(vms.values()):
            with contextlib.suppress(Exception):
                await self.driver.stop(vm.vm_id, force=True)
            why = model.DeathReason.JOB_FINISHED if vm.vm_id in finished else reason
            with contextlib.suppress(Exception):
                await self._finish(vm, reason=why, now=self.clock(), github_timeout=2.0)

    async def _wait_exits(self, vm_ids: set[int], *, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while vm_ids and time.monotonic() < deadline:
            seen = await self.driver.observe()
            if not any(seen[v].alive for v in vm_ids if v in seen):
                return
            await asyncio.sleep(0.1)

    # --- recording -------------------------------------------------------------------------

    async def transition(self, action: act.Transition, *, now: float) -> None:
        vm = self.state.vms.get(action.vm_id)
        if vm is None:
            return
        if action.target is S.GONE:
            await self._finish(vm, reason=action.reason, now=now, note=action.note)
            return
        if vm.state is action.target:
            if action.job_id is not None and vm.job_id != action.job_id:
                linked = dataclasses.replace(vm, job_id=action.job_id)
                await self.state.save_vm(linked, note=action.note)
            return
        moved = lifecycle.transition(
            vm, action.target, now=now, reason=action.reason, job_id=action.job_id
        )
        await self.state.save_vm(moved, note=action.note)

    async def _finish(
        self,
        vm: model.Vm,
        *,
        reason: model.DeathReason | None,
        now: float,
        note: str = "",
        github_timeout: float | None = None,
    ) -> None:
        """Move a VM to gone: release its resources, drop its runner, record it.

        If the final write fails (disk full, database locked) the VM stays active in memory;
        the next tick sees it gone again and records it then (release is idempotent)."""
        gone = lifecycle.transition(vm, S.GONE, now=now, reason=reason)
        await self.driver.release(vm.vm_id)
        if vm.runner_id is not None and not vm.ran_job:
            coroutine = self._delete_runner_quietly(vm.scope, vm.runner_id)
            if github_timeout is None:
                await coroutine
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(coroutine, timeout=github_timeout)
        await self.state.bury(gone, note=note)

    async def _delete_runner_quietly(self, scope: str, runner_id: int) -> None:
        try:
            await self.github.delete_runner(scope, runner_id)
        except errors.GitHubError as exc:
            log.info(
                "could not delete runner %s now (%s); the runner sweep will retry", runner_id, exc
            )

    async def deregister(self, action: act.DeregisterRunner) -> None:
        try:
            deleted = await self.github.delete_runner(action.scope, action.runner_id)
        except errors.RunnerBusy:
            return
        if deleted:
            await self.state.store.add_event(
                kind="runner.deregistered",
                message=f"runner {action.name} deregistered: {action.reason}",
                at=self.clock(),
            )
