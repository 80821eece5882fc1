"""The VM state machine: the one transition table and each state's deadline."""

from __future__ import annotations

import dataclasses

from blacksmith_mini.domain import model

S = model.VmState

TRANSITIONS: dict[model.VmState, frozenset[model.VmState]] = {
    S.PENDING: frozenset({S.BOOTING, S.STOPPING, S.GONE}),
    S.BOOTING: frozenset({S.IDLE, S.BUSY, S.STOPPING, S.GONE}),
    S.IDLE: frozenset({S.BUSY, S.STOPPING, S.GONE}),
    S.BUSY: frozenset({S.STOPPING, S.GONE}),
    S.STOPPING: frozenset({S.GONE}),
    S.GONE: frozenset(),
}


class IllegalTransition(ValueError):
    """A move the table does not allow."""


def can_transition(source: model.VmState, target: model.VmState) -> bool:
    return target in TRANSITIONS[source]


def transition(
    vm: model.Vm,
    target: model.VmState,
    *,
    now: float,
    reason: model.DeathReason | None = None,
    job_id: int | None = None,
) -> model.Vm:
    """Return ``vm`` moved to ``target``; raise ``IllegalTransition`` if the table forbids it."""
    if not can_transition(vm.state, target):
        raise IllegalTransition(f"VM {vm.vm_id}: {vm.state} -> {target} is not allowed")
    changes: dict[str, object] = {"state": target, "state_since": now}
    if target in (S.IDLE, S.BUSY) and vm.ready_at is None:
        changes["ready_at"] = now
    if target is S.BUSY:
        changes["ran_job"] = True
        if job_id is not None:
            changes["job_id"] = job_id
    if target is S.STOPPING:
        changes["stop_reason"] = reason or vm.stop_reason
    if target is S.GONE:
        changes["ended_at"] = now
        changes["death_reason"] = reason or vm.stop_reason or model.DeathReason.CRASHED
    return dataclasses.replace(vm, **changes)  # type: ignore[arg-type]


def deadline(vm: model.Vm, timeouts: model.Timeouts) -> float | None:
    """When ``vm``'s current state times out (epoch seconds); ``None`` for ``gone``.

    A busy VM's deadline is its maximum lifetime; it is shown as overdue but never enforced,
    because the planner never stops a busy VM.
    """
    limits = {
        S.PENDING: vm.state_since + timeouts.pending,
        S.BOOTING: vm.state_since + timeouts.boot,
        S.IDLE: min(vm.state_since + timeouts.idle, vm.created_at + timeouts.max_lifetime),
        S.BUSY: vm.created_at + timeouts.max_lifetime,
        S.STOPPING: vm.state_since + timeouts.stopping,
    }
    return limits.get(vm.state)
