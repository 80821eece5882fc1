"""The queue book kept between ticks answers exactly as the jobs worked out from scratch."""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import demand, model, planner, queuebook
from domain import builders
from domain.test_planner import worlds

J = model.JobStatus
LABEL_SETS = [
    ("self-hosted", "linux", "x64"),
    ("self-hosted", "linux", "x64", "large"),
    ("self-hosted", "gpu"),  # no pool: nobody's demand
]
REPOSITORIES = ["acme/app", "acme/infra", "Acme/App", "other/repo"]
POLICY = builders.policy(scopes=("acme/app", "acme/infra"))


def reference(jobs: list[model.Job], policy: model.Policy) -> dict[str, Any]:
    """What the planner worked out before the book: ``demand.queued_by_key``, oldest first."""
    by_key = demand.queued_by_key(jobs, policy)
    unstamped = {
        key: [job.id for job in found if job.vm_requested_at is None]
        for key, found in by_key.items()
    }
    return {
        "counts": {key: len(found) for key, found in by_key.items()},
        "oldest": {key: found[0].created_at for key, found in by_key.items()},
        "first_ages": {
            key: min(job.created_at for job in found if job.vm_requested_at is None)
            for key, found in by_key.items()
            if any(job.vm_requested_at is None for job in found)
        },
        "unstamped": unstamped,
    }


def answers(book: queuebook.QueueBook) -> dict[str, Any]:
    view = book.unstamped()
    return {
        "counts": book.counts(),
        "oldest": book.oldest(),
        "first_ages": book.first_ages(),
        "unstamped": {key: list(view[key]) for key in view},
    }


jobs_strategy = st.builds(
    lambda job_id, status, job_labels, repository, created, stamped: dataclasses.replace(
        builders.job(
            job_id, status=status, job_labels=job_labels, repository=repository, created_at=created
        ),
        vm_requested_at=created + 1 if stamped else None,
    ),
    st.integers(1, 40),
    st.sampled_from([J.QUEUED, J.QUEUED, J.QUEUED, J.IN_PROGRESS, J.COMPLETED]),
    st.sampled_from(LABEL_SETS),
    st.sampled_from(REPOSITORIES),
    st.sampled_from([0.0, 5.0, 5.0, 9.0, 12.5]),  # ties: the id breaks them
    st.booleans(),
)
# One tick's change: jobs replaced or added (new records), ids removed, and (rarely) a copy
# of an unchanged job that is equal but not the same object.
ticks = st.lists(
    st.tuples(
        st.lists(jobs_strategy, max_size=12),
        st.lists(st.integers(1, 40), max_size=6),
        st.booleans(),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    first=st.lists(jobs_strategy, max_size=30),
    changes=ticks,
    rebuild_share=st.sampled_from([queuebook.REBUILD_SHARE, 10**9]),  # 10**9: moves only
)
def test_a_kept_book_answers_as_one_worked_out_from_scratch(
    first: list[model.Job],
    changes: list[tuple[list[model.Job], list[int], bool]],
    rebuild_share: int,
) -> None:
    with mock.patch.object(queuebook, "REBUILD_SHARE", rebuild_share):
        _replay(first, changes)


def _replay(first: list[model.Job], changes: list[tuple[list[model.Job], list[int], bool]]) -> None:
    jobs = {job.id: job for job in first}
    book = queuebook.QueueBook.of(jobs.values(), POLICY)
    assert answers(book) == reference(list(jobs.values()), POLICY)
    for replaced, removed, copy_one in changes:
        jobs.update({job.id: job for job in replaced})
        for job_id in removed:
            jobs.pop(job_id, None)
        if copy_one and jobs:
            some = next(iter(jobs.values()))
            jobs[some.id] = dataclasses.replace(some)
        book = book.sync(jobs, POLICY)
        assert answers(book) == reference(list(jobs.values()), POLICY)


def test_a_new_policy_gets_a_new_book() -> None:
    jobs = {1: builders.job(1, repository="acme/infra")}
    book = queuebook.QueueBook.of(jobs.values(), builders.policy(scopes=("acme/app",)))
    assert book.counts() == {}  # acme/infra is not a scope of this policy
    wider = builders.policy(scopes=("acme/app", "acme/infra"))
    kept = book.sync(jobs, wider)
    assert kept is not book
    assert kept.counts() == {("default", "acme/infra"): 1}
    warmer = dataclasses.replace(  # limits and warm targets change as the loop runs
        wider, max_vms=99, pools=tuple(dataclasses.replace(p, max_vms=7) for p in wider.pools)
    )
    assert kept.sync(jobs, warmer) is kept
    bigger = dataclasses.replace(
        wider, pools=tuple(dataclasses.replace(p, vcpus=p.vcpus * 2) for p in wider.pools)
    )
    assert kept.sync(jobs, bigger) is not kept  # sizes decide between matching pools


def test_a_stamped_job_leaves_the_unstamped_list_but_still_counts() -> None:
    jobs = {n: builders.job(n, created_at=float(n)) for n in (1, 2, 3)}
    jobs.update({n: builders.job(n, created_at=float(n)) for n in range(4, 40)})
    book = queuebook.QueueBook.of(jobs.values(), POLICY)
    jobs[1] = dataclasses.replace(jobs[1], vm_requested_at=10.0)
    book = book.sync(jobs, POLICY)
    key = ("default", "acme/app")
    assert book.counts()[key] == 39
    assert book.oldest()[key] == 1.0
    assert book.first_ages()[key] == 2.0
    assert book.unstamped()[key][:2] == [2, 3]


@settings(max_examples=200, deadline=None)
@given(worlds(), st.data())
def test_the_plan_is_the_same_with_the_loops_book(world: Any, data: st.DataObject) -> None:
    """The loop hands the planner a book it kept over earlier ticks: the plan is the one the
    planner makes from the jobs alone."""
    snapshot, policy, now = world
    jobs = {job.id: job for job in snapshot.jobs}
    earlier = {  # what the book saw a tick before: some jobs in another state, or not yet seen
        job.id: dataclasses.replace(job, status=J.IN_PROGRESS) if data.draw(st.booleans()) else job
        for job in snapshot.jobs
        if data.draw(st.booleans())
    }
    book = queuebook.QueueBook.of(earlier.values(), policy).sync(jobs, policy)
    assert planner.plan(snapshot, policy, now, queue=book) == planner.plan(snapshot, policy, now)
