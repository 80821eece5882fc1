"""Job observations merge forward only; later attempts win; our stage stamps survive."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from blacksmith_mini.domain import jobs, model
from domain import builders

J = model.JobStatus


def test_late_in_progress_never_undoes_completed() -> None:
    done = builders.job(status=J.COMPLETED, conclusion="success")
    late = builders.job(status=J.IN_PROGRESS)
    merged = jobs.merge(done, late)
    assert (merged.status, merged.conclusion) == (J.COMPLETED, "success")


def test_newer_attempt_replaces_older() -> None:
    done = builders.job(status=J.COMPLETED, conclusion="failure")
    rerun = builders.job(status=J.QUEUED, run_attempt=2)
    assert jobs.merge(done, rerun).status is J.QUEUED


def test_older_attempt_is_ignored() -> None:
    second = builders.job(status=J.QUEUED, run_attempt=2)
    first = builders.job(status=J.COMPLETED, run_attempt=1, conclusion="failure")
    assert jobs.merge(second, first) == second


def test_our_stage_stamps_survive() -> None:
    known = dataclasses.replace(builders.job(), vm_requested_at=5.0, vm_id=3)
    merged = jobs.merge(known, builders.job(status=J.IN_PROGRESS, runner_name="bm-3-x"))
    assert (merged.vm_requested_at, merged.vm_id, merged.runner_name) == (5.0, 3, "bm-3-x")


@given(st.lists(st.sampled_from(list(J)), min_size=1, max_size=12))
def test_any_delivery_order_ends_at_the_furthest_status(order: list[model.JobStatus]) -> None:
    state: model.Job | None = None
    for status in order:
        conclusion = "success" if status is J.COMPLETED else None
        state = jobs.merge(state, builders.job(status=status, conclusion=conclusion))
    assert state is not None
    assert state.status is max(order, key=model.JOB_STATUS_ORDER.__getitem__)


def test_first_completion_of_an_attempt_stands() -> None:
    failed = builders.job(status=J.COMPLETED, conclusion="failure")
    late = builders.job(status=J.COMPLETED, conclusion="success")
    assert jobs.merge(failed, late).conclusion == "failure"
