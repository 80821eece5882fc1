"""Each VM state's deadline, and the stops the planner makes for VMs that stayed too long."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model
from blacksmith_mini.domain.facts import VmFacts
from blacksmith_mini.domain.model import BOOTING, BUSY, IDLE, PENDING, STOPPING

TIMED_OUT = {
    PENDING: model.DeathReason.START_FAILED,
    BOOTING: model.DeathReason.BOOT_TIMEOUT,
    IDLE: model.DeathReason.IDLE_TIMEOUT,
}
NEAR = 1e-3  # seconds: a VM this near its deadline is tested exactly


def deadline(vm: model.Vm, timeouts: model.Timeouts) -> float | None:
    """When ``vm``'s current state times out (epoch seconds); ``None`` for ``gone``.

    A busy VM's deadline is its maximum lifetime; it is shown as overdue but never enforced,
    because the planner never stops a busy VM.
    """
    state = vm.state  # an if-chain, not a table: this runs for every VM every tick
    if state is BUSY:
        return vm.created_at + timeouts.max_lifetime
    if state is IDLE:
        return min(vm.state_since + timeouts.idle, vm.created_at + timeouts.max_lifetime)
    if state is BOOTING:
        return vm.state_since + timeouts.boot
    if state is PENDING:
        return vm.state_since + timeouts.pending
    if state is STOPPING:
        return vm.state_since + timeouts.stopping
    return None


def overdue_stops(
    vms: Iterable[model.Vm],
    timeouts: model.Timeouts,
    now: float,
    *,
    facts: Mapping[int, VmFacts],
) -> list[act.StopVm]:
    """Stops for VMs past their state's deadline. A stopping VM whose failed job is kept for
    inspection (``kept_until``) is left alone until then; a busy VM never."""
    # Most VMs are far from their deadline: a comparison with a cut-off made once spares them
    # ``deadline()``. The margin keeps the exact test for those near it (float rounding).
    cut = {
        PENDING: now - timeouts.pending + NEAR,
        BOOTING: now - timeouts.boot + NEAR,
        IDLE: now - timeouts.idle + NEAR,
        STOPPING: now - timeouts.stopping + NEAR,
    }  # a busy VM is never stopped; a gone one has no deadline
    lifetime_cut = now - timeouts.max_lifetime + NEAR
    found: list[act.StopVm] = []
    for vm in vms:
        state = vm.state
        state_cut = cut.get(state)
        if state_cut is None or (
            vm.state_since > state_cut and (state is not IDLE or vm.created_at > lifetime_cut)
        ):
            continue
        limit = deadline(vm, timeouts)
        if limit is None or now < limit:
            continue
        if state is STOPPING:
            fact = facts.get(vm.vm_id)
            if fact is not None and fact.kept_until is not None and now < fact.kept_until:
                continue
            reason = vm.stop_reason or model.DeathReason.SCALED_DOWN
            found.append(act.StopVm(vm_id=vm.vm_id, reason=reason, force=True))
            continue
        reason = TIMED_OUT[state]
        if state is IDLE and now >= vm.created_at + timeouts.max_lifetime:
            reason = model.DeathReason.MAX_LIFETIME
        found.append(act.StopVm(vm_id=vm.vm_id, reason=reason))
    return found
