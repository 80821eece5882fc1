"""Warm pools sized from demand: each adaptive pool's idle target, recomputed every minute.

A pool is adaptive when its ``max_idle`` is above its ``min_idle``. Each minute its jobs'
arrival times of the last 15 minutes and of the same 15 minutes a week ago are read from the
store (one query for every pool; each job's pool by label matching, as the planner does),
its refill time from its recent VMs (requested to ready), its room from its busy VMs, and
``domain.warmpool.idle_target`` decides. ``apply`` puts the targets into the policy the
planner reads (``Pool.idle_target``, with its reason for the dashboard).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol

from blacksmith_mini.domain import labels, model, warmpool

REFRESH_SECONDS = 60.0
S = model.VmState


class ArrivalStore(Protocol):
    async def job_arrivals(
        self, *, windows: Sequence[tuple[float, float]]
    ) -> list[tuple[float, tuple[str, ...]]]: ...


class WarmPools:
    def __init__(self, *, store: ArrivalStore) -> None:
        self.store = store
        self.targets: dict[str, warmpool.IdleTarget] = {}
        self._next = 0.0

    async def refresh(self, policy: model.Policy, vms: Iterable[model.Vm], *, now: float) -> None:
        """Recompute the targets when a minute has passed since the last time."""
        adaptive = [p for p in policy.pools if p.max_idle is not None and p.max_idle > p.min_idle]
        if not adaptive:
            self.targets = {}
            return
        if now < self._next:
            return
        self._next = now + REFRESH_SECONDS
        ago = now - warmpool.WEEK_SECONDS
        half = warmpool.RECENT_SECONDS / 2
        windows = ((now - warmpool.RECENT_SECONDS, now), (ago - half, ago + half))
        arrivals: dict[str, list[float]] = collections.defaultdict(list)
        for at, job_labels in await self.store.job_arrivals(windows=windows):
            found = labels.match(job_labels, policy.pools).pool
            if found is not None:
                arrivals[found.name].append(at)
        busy: dict[str, int] = collections.Counter()
        refills: dict[str, list[float]] = collections.defaultdict(list)
        for vm in vms:
            if vm.state in (S.BUSY, S.STOPPING):
                busy[vm.pool] += 1
            if vm.ready_at is not None and vm.ready_at > now - warmpool.RECENT_SECONDS:
                refills[vm.pool].append(vm.ready_at - vm.created_at)
        self.targets = {
            pool.name: warmpool.idle_target(
                pool=pool.name,
                min_idle=pool.min_idle,
                max_idle=pool.max_idle,
                room=pool.max_vms - busy[pool.name],
                arrivals=arrivals[pool.name],
                refills=refills[pool.name],
                now=now,
            )
            for pool in adaptive
        }

    def apply(self, policy: model.Policy) -> model.Policy:
        """``policy`` with each adaptive pool's current target (the rest as they are)."""
        if not self.targets:
            return policy
        pools = tuple(
            dataclasses.replace(pool, idle_target=found.target, idle_reason=found.reason)
            if (found := self.targets.get(pool.name)) is not None
            else pool
            for pool in policy.pools
        )
        return dataclasses.replace(policy, pools=pools)
