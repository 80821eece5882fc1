"""The VM state machine: one test per row of the transition table, and the deadlines."""

from __future__ import annotations

import itertools

import pytest

from blacksmith_mini.domain import deadlines, lifecycle, model
from domain import builders

S = model.VmState
ALLOWED = {
    (S.PENDING, S.BOOTING), (S.PENDING, S.STOPPING), (S.PENDING, S.GONE),
    (S.BOOTING, S.IDLE), (S.BOOTING, S.BUSY), (S.BOOTING, S.STOPPING), (S.BOOTING, S.GONE),
    (S.IDLE, S.BUSY), (S.IDLE, S.STOPPING), (S.IDLE, S.GONE),
    (S.BUSY, S.STOPPING), (S.BUSY, S.GONE),
    (S.STOPPING, S.GONE),
}  # fmt: skip


@pytest.mark.parametrize(("source", "target"), sorted(itertools.product(S, S)))
def test_transition_table(source: model.VmState, target: model.VmState) -> None:
    vm = builders.vm(state=source)
    if (source, target) in ALLOWED:
        moved = lifecycle.transition(vm, target, now=5.0)
        assert moved.state is target
        assert moved.state_since == 5.0
    else:
        with pytest.raises(lifecycle.IllegalTransition):
            lifecycle.transition(vm, target, now=5.0)


def test_gone_records_reason_and_end() -> None:
    vm = builders.vm(state=S.IDLE)
    gone = lifecycle.transition(vm, S.GONE, now=9.0, reason=model.DeathReason.IDLE_TIMEOUT)
    assert (gone.ended_at, gone.death_reason) == (9.0, model.DeathReason.IDLE_TIMEOUT)


def test_gone_after_stopping_keeps_the_stop_reason() -> None:
    vm = builders.vm(state=S.IDLE)
    stopping = lifecycle.transition(vm, S.STOPPING, now=1.0, reason=model.DeathReason.SCALED_DOWN)
    gone = lifecycle.transition(stopping, S.GONE, now=2.0)
    assert gone.death_reason is model.DeathReason.SCALED_DOWN


def test_ready_and_job_are_stamped_on_busy() -> None:
    vm = builders.vm(state=S.BOOTING)
    busy = lifecycle.transition(vm, S.BUSY, now=3.0, job_id=42)
    assert (busy.ready_at, busy.job_id, busy.ran_job) == (3.0, 42, True)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (S.PENDING, 10 + 120),
        (S.BOOTING, 10 + 180),
        (S.IDLE, 10 + 300),
        (S.BUSY, 0 + 6 * 3600),
        (S.STOPPING, 10 + 30),
        (S.GONE, None),
    ],
)
def test_every_state_has_a_deadline_but_gone(state: model.VmState, expected: float | None) -> None:
    vm = builders.vm(state=state, state_since=10.0, created_at=0.0)
    assert deadlines.deadline(vm, model.Timeouts()) == expected


def test_idle_deadline_is_capped_by_max_lifetime() -> None:
    vm = builders.vm(state=S.IDLE, state_since=1000.0, created_at=0.0)
    assert deadlines.deadline(vm, model.Timeouts(max_lifetime=1100.0, idle=300.0)) == 1100.0
