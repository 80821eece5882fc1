"""Each VM state's deadline: when the planner acts on a VM that stayed too long."""

from __future__ import annotations

from blacksmith_mini.domain import model

S = model.VmState


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
