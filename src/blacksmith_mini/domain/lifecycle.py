"""The VM state machine: the one transition table. Only ``control/acts.py`` (and the planner,
on its own copies) moves a VM with it; each state's deadline is in ``deadlines``."""

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
