"""Why a queued job is still waiting, in words (pure; the view and the API show it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import demand, labels, model
from blacksmith_mini.domain.model import BOOTING, IDLE, PENDING, QUEUED


def waiting_reason(
    job: model.Job,
    *,
    policy: model.Policy,
    vms: Sequence[model.Vm],
    now: float,
    github_note: str | None = None,
    backoff: Mapping[str, pool_backoff.PoolBackoff] | None = None,
    repository_note: str | None = None,
    found: model.Match | None = None,
    capacity_notes: Mapping[str, str] | None = None,
) -> str | None:
    """Why a queued job is still waiting, or None when it is not queued.

    ``github_note`` says why GitHub cannot be asked for a runner right now (rate limited
    until when, unreachable since when); ``repository_note`` why the job's repository cannot
    be polled (404, 403, moved); ``backoff`` which pools' starts keep failing; ``found`` the
    job's pool match when already computed this tick; ``capacity_notes`` why no host has
    room for each pool's next VM (many hosts), fair share included.
    """
    if job.status is not QUEUED:
        return None
    found = found or labels.match(job.labels, policy.pools)
    refused = demand.unmatched_reason(job, policy, found)
    if refused or found.pool is None:
        return refused
    pool = found.pool
    key = demand.demand_key(job, pool, policy)
    if key is None:
        return f"repository {job.repository} is not one of the configured scopes"
    if policy.draining:
        return "the control plane is draining: no new VMs are started"
    if pool.name in policy.paused_pools:
        return f"pool '{pool.name}' is paused"
    mine = [vm for vm in vms if (vm.pool, vm.scope) == key and vm.is_active]
    idle = [vm for vm in mine if vm.state is IDLE]
    if idle:
        since = min(vm.state_since for vm in idle)
        return f"runner online and idle for {now - since:.0f}s; waiting for GitHub to assign it"
    booting = [vm for vm in mine if vm.state in (PENDING, BOOTING)]
    if booting:
        since = min(vm.state_since for vm in booting)
        if github_note and all(vm.state is PENDING for vm in booting):
            return f"VM requested {now - since:.0f}s ago; {github_note}"
        return f"VM booting for {now - since:.0f}s"
    held = (backoff or {}).get(pool.name)
    if held is not None and held.blocks(now):
        return github_note or held.describe(now)
    if sum(1 for vm in vms if vm.pool == pool.name and vm.is_active) >= pool.max_vms:
        return f"pool '{pool.name}' is at its limit of {pool.max_vms} VMs"
    if sum(1 for vm in vms if vm.is_active) >= policy.max_vms:
        return f"at max_vms ({policy.max_vms}); waiting for a VM to finish"
    if capacity_notes and pool.name in capacity_notes:
        return capacity_notes[pool.name]
    if repository_note:
        return repository_note
    return github_note or "a VM will be requested on the next tick"


def with_job_stages(job: model.Job, vm: model.Vm | None) -> model.Job:
    """Fill a job's VM stage timestamps from the VM that ran it."""
    if vm is None:
        return job
    requested = job.vm_requested_at or max(vm.created_at, job.created_at)
    ready = job.vm_ready_at or (max(vm.ready_at, requested) if vm.ready_at else None)
    return dataclasses.replace(job, vm_id=vm.vm_id, vm_requested_at=requested, vm_ready_at=ready)
