"""Operator actions: drain, resume, stop one VM, pause or resume a pool, change pool limits.

Each runs under the loop's lock (never in the middle of a tick), is persisted in the store's
control state (so it outlives a restart and is shared by every host), is recorded as an
``operator.*`` event naming who and why, and wakes the loop.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model

if TYPE_CHECKING:
    from blacksmith_mini.control.reconciler import Reconciler


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
    return dataclasses.replace(policy, draining=draining, paused_pools=paused, pools=pools)


class Operator:
    def __init__(self, loop: Reconciler) -> None:
        self.loop = loop
        self.state: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        self.state = await self.loop.store.control_state()
        self.loop.policy = apply_state(self.loop.base_policy, self.state)

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
        now = self.loop.clock()
        if key:
            self.state[key] = value
            await self.loop.store.set_control_state(key, value, at=now)
            self.loop.policy = apply_state(self.loop.base_policy, self.state)
        text = f"{message} by {actor}" + (f": {reason}" if reason else "")
        await self.loop.store.add_event(
            kind=f"operator.{kind}", message=text, at=now, actor=actor, vm_id=vm_id
        )
        self.loop.wake()

    async def drain(self, *, actor: str, reason: str) -> None:
        """No new VMs; running jobs finish; idle VMs are stopped as surplus."""
        async with self.loop.lock:
            await self._save(
                "draining",
                {"on": True, "by": actor, "reason": reason, "at": self.loop.clock()},
                kind="drain",
                message="draining",
                actor=actor,
                reason=reason,
            )

    async def resume(self, *, actor: str, reason: str) -> None:
        async with self.loop.lock:
            await self._save(
                "draining",
                {"on": False, "by": actor, "reason": reason, "at": self.loop.clock()},
                kind="resume",
                message="resumed",
                actor=actor,
                reason=reason,
            )

    def _pool(self, name: str) -> model.Pool:
        pool = next((p for p in self.loop.policy.pools if p.name == name), None)
        if pool is None:
            names = ", ".join(p.name for p in self.loop.policy.pools)
            raise Refused(404, f"no pool named {name!r} (pools: {names})")
        return pool

    async def pause_pool(self, name: str, *, paused: bool, actor: str, reason: str) -> None:
        async with self.loop.lock:
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
        async with self.loop.lock:
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
            return self._pool(name)

    async def stop_vm(self, vm_id: int, *, force: bool, actor: str, reason: str) -> model.Vm:
        """Stop one VM. A busy VM is refused unless ``force``: its job would fail."""
        async with self.loop.lock:
            vm = self.loop.vms.get(vm_id)
            if vm is None:
                raise Refused(404, f"VM {vm_id} is not running")
            if vm.state is model.VmState.BUSY and not force:
                raise Refused(
                    409,
                    f"VM {vm_id} is running job {vm.job_id or '(unknown)'}: stopping it fails the "
                    "job; wait for it, drain, or repeat with force=true",
                )
            stop = act.StopVm(
                vm_id=vm_id,
                reason=model.DeathReason.STOPPED_BY_OPERATOR,
                force=force or vm.state is model.VmState.STOPPING,
            )
            # The same path as the planner's stops: an idle runner is deregistered at GitHub
            # first, so one that takes a job at this moment is not killed with it.
            if not await self.loop.acts.stop_vm(stop, now=self.loop.clock()):
                raise Refused(
                    409,
                    f"VM {vm_id} took a job just now (GitHub refused to deregister its runner): "
                    "not stopped; wait for the job, or repeat with force=true",
                )
            await self._save(
                "",
                {},
                kind="vm_stop",
                message=f"VM {vm_id} stop{' (forced)' if force else ''}",
                actor=actor,
                reason=reason,
                vm_id=vm_id,
            )
            return self.loop.vms.get(vm_id, vm)
