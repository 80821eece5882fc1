"""Operator intents: drain, resume, pause or resume a pool, change pool limits, stop one VM.

Each is a decision persisted in the store's control state (so it outlives a restart and is
shared by every control-plane replica), recorded as an ``operator.*`` event naming who and why,
and then acted on by the loop: the planner reads the decisions through the policy (``apply``)
and ``acts`` performs what it asks, through the same safe paths as every other action. A stop
request in particular becomes a ``StopVm`` of the planner's, so an idle VM's runner is
deregistered at GitHub before the VM is stopped, as every stop does; the request is forgotten
once its VM is gone. Nothing here touches a VM or the driver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from blacksmith_mini.domain import model
from blacksmith_mini.store import repository

if TYPE_CHECKING:
    from blacksmith_mini.control.state import LoopState

STOP_WAIT_SECONDS = 10.0
S = model.VmState


class Refused(Exception):
    """The action cannot be done as asked; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def apply_state(policy: model.Policy, state: dict[str, dict[str, Any]]) -> model.Policy:
    """The configured policy with the persisted operator decisions applied."""
    draining = bool(state.get("draining", {}).get("on", False))
    paused = frozenset(state.get("paused_pools", {}).get("pools", []))
    limits = state.get("pool_limits", {}).get("pools", {})
    pools = tuple(
        dataclasses.replace(
            pool,
            min_idle=int(limits.get(pool.name, {}).get("min_idle", pool.min_idle)),
            max_vms=int(limits.get(pool.name, {}).get("max_vms", pool.max_vms)),
        )
        for pool in policy.pools
    )
    stops = {
        int(vm_id): bool(request.get("force", False))
        for vm_id, request in state.get("stop_requests", {}).get("vms", {}).items()
    }
    return dataclasses.replace(
        policy, draining=draining, paused_pools=paused, pools=pools, stop_requests=stops
    )


class Operator:
    def __init__(
        self,
        *,
        store: repository.Store,
        lock: asyncio.Lock,
        wake: Callable[[], None],
        current: Callable[[], tuple[model.Policy, LoopState]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.lock = lock
        self.wake = wake
        self.current = current
        self.clock = clock
        self.state: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        self.state = await self.store.control_state()

    def apply(self, policy: model.Policy) -> model.Policy:
        return apply_state(policy, self.state)

    async def _save(
        self,
        key: str,
        value: dict[str, Any],
        *,
        kind: str,
        message: str,
        actor: str,
        reason: str,
        vm_id: int | None = None,
    ) -> None:
        now = self.clock()
        await self.store.set_control_state(key, value, at=now)
        self.state[key] = value
        text = f"{message} by {actor}" + (f": {reason}" if reason else "")
        await self.store.add_event(
            kind=f"operator.{kind}", message=text, at=now, actor=actor, vm_id=vm_id
        )
        self.wake()

    async def drain(self, *, actor: str, reason: str) -> None:
        """No new VMs; running jobs finish; idle VMs are stopped as surplus."""
        async with self.lock:
            value = {"on": True, "by": actor, "reason": reason, "at": self.clock()}
            await self._save(
                "draining", value, kind="drain", message="draining", actor=actor, reason=reason
            )

    async def resume(self, *, actor: str, reason: str) -> None:
        async with self.lock:
            value = {"on": False, "by": actor, "reason": reason, "at": self.clock()}
            await self._save(
                "draining", value, kind="resume", message="resumed", actor=actor, reason=reason
            )

    def _pool(self, name: str) -> model.Pool:
        policy, _ = self.current()
        pool = next((p for p in policy.pools if p.name == name), None)
        if pool is None:
            names = ", ".join(p.name for p in policy.pools)
            raise Refused(404, f"no pool named {name!r} (pools: {names})")
        return pool

    async def pause_pool(self, name: str, *, paused: bool, actor: str, reason: str) -> None:
        async with self.lock:
            self._pool(name)
            current = set(self.state.get("paused_pools", {}).get("pools", []))
            current = current | {name} if paused else current - {name}
            await self._save(
                "paused_pools",
                {"pools": sorted(current)},
                kind="pool_pause" if paused else "pool_resume",
                message=f"pool {name} {'paused' if paused else 'resumed'}",
                actor=actor,
                reason=reason,
            )

    async def set_pool_limits(
        self, name: str, *, min_idle: int | None, max_vms: int | None, actor: str, reason: str
    ) -> model.Pool:
        async with self.lock:
            pool = self._pool(name)
            limits = dict(self.state.get("pool_limits", {}).get("pools", {}))
            entry = dict(limits.get(name, {}))
            if min_idle is not None:
                entry["min_idle"] = min_idle
            if max_vms is not None:
                entry["max_vms"] = max_vms
            if entry.get("min_idle", pool.min_idle) > entry.get("max_vms", pool.max_vms):
                raise Refused(422, "min_idle cannot exceed max_vms")
            limits[name] = entry
            await self._save(
                "pool_limits",
                {"pools": limits},
                kind="pool_limits",
                message=f"pool {name} limits set to {entry}",
                actor=actor,
                reason=reason,
            )
        return dataclasses.replace(
            pool,
            min_idle=int(entry.get("min_idle", pool.min_idle)),
            max_vms=int(entry.get("max_vms", pool.max_vms)),
        )

    async def stop_vm(self, vm_id: int, *, force: bool, actor: str, reason: str) -> model.Vm:
        """Request a VM's stop and wait (bounded) for the loop to carry it out.

        A busy VM is refused unless ``force``: its job would fail. If the VM's runner takes a
        job before the loop gets to it, the stop is not done (409)."""
        async with self.lock:
            _, loop_state = self.current()
            vm = loop_state.vms.get(vm_id)
            if vm is None:
                raise Refused(404, f"VM {vm_id} is not running")
            if vm.state is S.BUSY and not force:
                raise Refused(
                    409,
                    f"VM {vm_id} is running job {vm.job_id or '(unknown)'}: stopping it fails the "
                    "job; wait for it, drain, or repeat with force=true",
                )
            requests = dict(self.state.get("stop_requests", {}).get("vms", {}))
            requests[str(vm_id)] = {"force": force, "by": actor, "reason": reason}
            await self._save(
                "stop_requests",
                {"vms": requests},
                kind="vm_stop",
                message=f"VM {vm_id} stop{' (forced)' if force else ''} requested",
                actor=actor,
                reason=reason,
                vm_id=vm_id,
            )
        return await self._await_stop(vm_id, force=force)

    async def _await_stop(self, vm_id: int, *, force: bool) -> model.Vm:
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        last: model.Vm | None = None
        while time.monotonic() < deadline:
            _, loop_state = self.current()
            vm = loop_state.vms.get(vm_id)
            if vm is None:
                gone = next((g for g in loop_state.gone if g.vm_id == vm_id), last)
                if gone is None:
                    raise Refused(404, f"VM {vm_id} is gone")
                return gone
            last = vm
            if vm.state is S.STOPPING:
                return vm
            if vm.state is S.BUSY and not force:
                raise Refused(
                    409,
                    f"VM {vm_id} took a job just now (GitHub refused to deregister its runner): "
                    "not stopped; wait for the job, or repeat with force=true",
                )
            await asyncio.sleep(0.05)
        assert last is not None
        return last  # still requested: the loop carries it out when it can

    async def forget_stops(self, *, active: set[int]) -> None:
        """Drop the stop requests of VMs that are gone (called by the loop each tick)."""
        requests = self.state.get("stop_requests", {}).get("vms", {})
        kept = {key: value for key, value in requests.items() if int(key) in active}
        if len(kept) != len(requests):
            await self.store.set_control_state("stop_requests", {"vms": kept}, at=self.clock())
            self.state["stop_requests"] = {"vms": kept}
