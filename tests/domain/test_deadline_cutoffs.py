"""``overdue_stops`` spares VMs far from their deadline by a cut-off made once per tick; what it
stops is what ``deadline()`` says, at its exact edges too (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import deadlines, model
from domain import builders

TIMEOUTS = model.Timeouts()
NOW = 1_764_000_000.123  # epoch seconds of today's order: float rounding as in production
EDGES = [0.0, TIMEOUTS.pending, TIMEOUTS.boot, TIMEOUTS.idle, TIMEOUTS.stopping]
ages = st.sampled_from(EDGES).flatmap(
    lambda edge: st.sampled_from([edge, edge - 1e-7, edge + 1e-7, edge - 0.5, edge + 0.5])
) | st.floats(0, 2 * TIMEOUTS.max_lifetime)
states = st.sampled_from(list(model.VmState))


def expected(vms: list[model.Vm]) -> set[int]:
    found = set()
    for vm in vms:
        limit = deadlines.deadline(vm, TIMEOUTS)
        if vm.state is not model.VmState.BUSY and limit is not None and limit <= NOW:
            found.add(vm.vm_id)
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(states, ages, ages), max_size=20))
def test_the_cut_off_stops_exactly_what_the_deadlines_say(
    made: list[tuple[model.VmState, float, float]],
) -> None:
    vms = [
        builders.vm(
            index,
            state=state,
            state_since=NOW - in_state,
            created_at=NOW - in_state - lived,
        )
        for index, (state, in_state, lived) in enumerate(made)
    ]
    stops = deadlines.overdue_stops(vms, TIMEOUTS, NOW, facts={})
    assert {stop.vm_id for stop in stops} == expected(vms)


def test_an_idle_vm_past_its_lifetime_is_stopped_though_fresh_in_its_state() -> None:
    vm = builders.vm(
        1, state=model.VmState.IDLE, state_since=NOW - 1, created_at=NOW - TIMEOUTS.max_lifetime
    )
    (stop,) = deadlines.overdue_stops([vm], TIMEOUTS, NOW, facts={})
    assert stop.reason is model.DeathReason.MAX_LIFETIME
