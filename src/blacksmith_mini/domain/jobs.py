"""How job observations combine: state only moves forward, later attempts win."""

from __future__ import annotations

import dataclasses

from blacksmith_mini.domain import model


def merge(known: model.Job | None, seen: model.Job, *, runner_gone: bool = False) -> model.Job:
    """Combine what we knew of a job with a new observation (REST poll or webhook).

    Observations arrive late, twice and out of order. A status never moves backwards (a late
    ``in_progress`` never undoes ``completed``, and the first completion of an attempt stands);
    an observation of an older ``run_attempt`` is
    ignored and a newer attempt replaces the job. Timestamps already known are kept; our own
    (``vm_requested_at``, ``vm_ready_at``, ``vm_id``) survive every merge.

    One step back is real: when the runner a job was assigned to goes away before acquiring
    it, GitHub puts the job back to queued with no runner. The caller says so
    (``runner_gone``: the observation is current, not a late webhook, and the assigned runner
    is known to be gone); then the job is queued again and our VM stamps are cleared, so it
    is served again.
    """
    if known is None:
        return seen
    if seen.run_attempt < known.run_attempt:
        return known
    if is_requeue(known, seen) and runner_gone:
        return dataclasses.replace(
            seen, created_at=min(known.created_at, seen.created_at), name=seen.name or known.name
        )
    ours = {
        "vm_requested_at": known.vm_requested_at,
        "vm_ready_at": known.vm_ready_at,
        "vm_id": known.vm_id,
    }
    if seen.run_attempt > known.run_attempt:
        return dataclasses.replace(seen, **ours)  # type: ignore[arg-type]
    rank_seen = model.JOB_STATUS_ORDER[seen.status]
    rank_known = model.JOB_STATUS_ORDER[known.status]
    # completed is final: a second completion of the same attempt does not rewrite it
    forward = rank_seen > rank_known or (
        rank_seen == rank_known and known.status is not model.JobStatus.COMPLETED
    )
    newest = seen if forward else known
    return dataclasses.replace(
        newest,
        created_at=min(known.created_at, seen.created_at),
        started_at=known.started_at or seen.started_at,
        completed_at=newest.completed_at or known.completed_at,
        conclusion=newest.conclusion or known.conclusion,
        runner_name=newest.runner_name or known.runner_name,
        html_url=newest.html_url or known.html_url,
        name=newest.name or known.name,
        workflow_name=newest.workflow_name or known.workflow_name,
        **ours,  # type: ignore[arg-type]
    )


def is_requeue(known: model.Job, seen: model.Job) -> bool:
    """``seen`` shows ``known``'s attempt back in the queue after a runner was assigned."""
    return (
        known.status is model.JobStatus.ASSIGNED
        and seen.status is model.JobStatus.QUEUED
        and seen.runner_name is None
        and seen.run_attempt == known.run_attempt
    )
