"""Each VM state's deadline: when the planner acts on a VM that stayed too long."""

from __future__ import annotations

from blacksmith_mini.domain import model
from blacksmith_mini.domain.model import BOOTING, BUSY, IDLE, PENDING, STOPPING


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
