"""Re-running a job our infrastructure failed: persisted first, asked once, told as an event.

``perform_rerun`` against the in-memory GitHub (``fakes.FakeGitHub``) and a SQLite store.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from blacksmith_mini.control import reruns
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model
from blacksmith_mini.domain import reruns as decide
from blacksmith_mini.github import errors
from blacksmith_mini.simulator import state
from blacksmith_mini.store import engine, repository
from control import fakes
from github import simfixture

pytestmark = pytest.mark.anyio
NOW = 1_000_000.0
STILL_RUNNING = errors.RerunRefused(
    "GitHub refused to re-run the job (403): This workflow is already running",
    status=403,
    reason="This workflow is already running",
)


def action(job_id: int = 7, *, name: str = "build") -> act.RerunJob:
    return act.RerunJob(
        repository="acme/app",
        job_id=job_id,
        reason=f"crashed: VM 3 (bm-3-abc) in pool default ended under job {job_id}",
        key=f"acme/app|{job_id * 10}|{name}",
        vm_id=3,
        cause=model.DeathReason.CRASHED,
    )


@pytest.fixture
async def store(tmp_path: pathlib.Path) -> AsyncIterator[repository.Store]:
    opened = repository.Store(engine.sqlite_url(tmp_path))
    await opened.open()
    yield opened
    await opened.close()


async def perform(
    github: fakes.FakeGitHub, store: repository.Store, rerun: act.RerunJob, now: float = NOW
) -> str:
    return await reruns.perform_rerun(rerun, github=github, store=store, now=now)


async def kinds(store: repository.Store) -> list[str]:
    return [event.kind for event in await store.events(kind_prefix="job.rerun")]


async def test_the_rerun_is_persisted_before_github_is_asked_and_told_as_an_event(
    store: repository.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    github, timeline = fakes.FakeGitHub(), []
    saved = store.set_control_state

    async def recording(key: str, value: dict[str, Any], *, at: float) -> None:
        timeline.append(("persisted", copy.deepcopy(value)))
        await saved(key, value, at=at)

    monkeypatch.setattr(store, "set_control_state", recording)
    github.on_rerun = lambda repository, job_id: timeline.append(("asked", job_id))
    assert await perform(github, store, action()) == "rerun"
    first, asked, outcome = timeline
    assert first[1]["jobs"]["acme/app|70|build"]["state"] == "asking"
    assert asked == ("asked", 7)
    assert outcome[1]["jobs"]["acme/app|70|build"]["state"] == "rerun"
    [event] = await store.events(kind_prefix="job.rerun")
    assert (event.kind, event.job_id, event.vm_id) == ("job.rerun", 7, 3)
    assert "crashed: VM 3" in event.message
    assert await reruns.already_rerun(store, now=NOW + 86400) == {"acme/app|70|build"}


async def test_a_job_is_rerun_once_whatever_asks_again(tmp_path: pathlib.Path) -> None:
    github = fakes.FakeGitHub()
    first = repository.Store(engine.sqlite_url(tmp_path))
    await first.open()
    assert await perform(github, first, action()) == "rerun"
    assert await perform(github, first, action(), NOW + 5) == "skipped"
    await first.close()
    restarted = repository.Store(engine.sqlite_url(tmp_path))  # another process, same store
    await restarted.open()
    assert await perform(github, restarted, action(), NOW + 60) == "skipped"
    # The re-run's own new job (a new id, the same logical job) is not re-run either.
    renewed = dataclasses.replace(action(), job_id=8)
    assert await perform(github, restarted, renewed, NOW + 60) == "skipped"
    assert await perform(github, restarted, action(9), NOW + 61) == "rerun"
    assert github.reruns == [("acme/app", 7), ("acme/app", 9)]
    await restarted.close()


async def test_a_failed_write_asks_github_nothing(
    store: repository.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    github = fakes.FakeGitHub()

    async def full_disk(key: str, value: dict[str, Any], *, at: float) -> None:
        raise OSError("database or disk is full")

    monkeypatch.setattr(store, "set_control_state", full_disk)
    with pytest.raises(OSError, match="disk is full"):
        await perform(github, store, action())
    assert github.reruns == []
    assert await reruns.already_rerun(store, now=NOW) == frozenset()  # the next tick tries


async def test_a_crash_while_asking_never_asks_twice(store: repository.Store) -> None:
    github = fakes.FakeGitHub()

    def killed(repository: str, job_id: int) -> None:
        raise RuntimeError("killed")  # the process dies with the request in flight

    github.on_rerun = killed
    with pytest.raises(RuntimeError, match="killed"):
        await perform(github, store, action())
    github.on_rerun = None
    assert await reruns.already_rerun(store, now=NOW + 3 * 86400) == {"acme/app|70|build"}
    assert await perform(github, store, action(), NOW + 600) == "skipped"
    assert github.reruns == [("acme/app", 7)]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (
            errors.RerunRefused(
                "GitHub refused to re-run the job (403): Unable to retry this workflow run "
                "because it was created over a month ago",
                status=403,
                reason="Unable to retry this workflow run because it was created over a month ago",
            ),
            "over a month ago",
        ),
        (
            errors.RerunRefused("GitHub refused (404): Not Found", status=404, reason="Not Found"),
            "404",
        ),
        (
            errors.PermissionDenied(
                "GitHub answered 403: Resource not accessible by integration. The GitHub App "
                "needs Actions: write on acme/app"
            ),
            "Actions: write",
        ),
        (errors.BadCredentials("GitHub answered 401: set a valid GITHUB_TOKEN"), "GITHUB_TOKEN"),
    ],
)
async def test_a_refusal_is_an_event_and_final(
    store: repository.Store, error: errors.GitHubError, words: str
) -> None:
    github = fakes.FakeGitHub()
    github.rerun_errors = [error]
    assert await perform(github, store, action()) == "refused"
    [event] = await store.events(kind_prefix="job.rerun")
    assert event.kind == "job.rerun_refused" and words in event.message
    assert "not tried again" in event.message
    assert await perform(github, store, action(), NOW + 86400) == "skipped"
    assert len(github.reruns) == 1


async def test_a_run_still_in_progress_is_tried_again_a_few_times_then_given_up(
    store: repository.Store,
) -> None:
    github = fakes.FakeGitHub()
    github.rerun_errors = [STILL_RUNNING] * reruns.MAX_TRIES
    now = NOW
    for _ in range(reruns.MAX_TRIES - 1):
        assert await perform(github, store, action(), now) == "retry"
        assert await reruns.already_rerun(store, now=now + reruns.RETRY_SECONDS - 1) == {
            "acme/app|70|build"
        }
        now += reruns.RETRY_SECONDS
        assert await reruns.already_rerun(store, now=now) == frozenset()
    assert await perform(github, store, action(), now) == "refused"
    assert await reruns.already_rerun(store, now=now + 86400) == {"acme/app|70|build"}
    assert len(github.reruns) == reruns.MAX_TRIES
    events = await store.events(kind_prefix="job.rerun")
    assert [e.kind for e in events] == ["job.rerun_refused"] * reruns.MAX_TRIES
    assert "try again" in events[0].message and "not tried again" in events[-1].message


async def test_an_outage_or_a_rate_limit_is_tried_again_when_it_may_pass(
    store: repository.Store,
) -> None:
    github = fakes.FakeGitHub()
    github.rerun_errors = [
        errors.RateLimited(NOW + 900, "GitHub answered 403 (secondary limit)"),
        errors.GitHubUnavailable("GitHub unreachable"),
    ]
    assert await perform(github, store, action()) == "retry"
    assert await reruns.already_rerun(store, now=NOW + 899) == {"acme/app|70|build"}
    assert await perform(github, store, action(), NOW + 900) == "retry"
    assert await reruns.already_rerun(store, now=NOW + 900 + reruns.RETRY_SECONDS) == frozenset()
    assert await perform(github, store, action(), NOW + 900 + reruns.RETRY_SECONDS) == "rerun"
    assert await kinds(store) == ["job.rerun_failed", "job.rerun_failed", "job.rerun"]


async def test_records_are_pruned_after_a_week_and_bounded(
    store: repository.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    github = fakes.FakeGitHub()
    await perform(github, store, action(1))
    later = NOW + reruns.KEEP_SECONDS + 1
    await perform(github, store, action(2), later)
    assert await reruns.already_rerun(store, now=later) == {"acme/app|20|build"}
    monkeypatch.setattr(reruns, "MAX_RECORDS", 3)
    for job_id in range(3, 8):
        await perform(github, store, action(job_id), later + job_id)
    assert await reruns.already_rerun(store, now=later + 10) == {
        f"acme/app|{job_id * 10}|build" for job_id in (5, 6, 7)
    }


async def test_from_a_lost_runner_to_a_new_attempt_at_the_simulated_github(
    store: repository.Store,
) -> None:
    """The domain's decision, performed with the real client against the simulator."""
    clock = simfixture.Clock()
    gh, sim, _, _ = simfixture.make(clock=clock)
    labels = ["self-hosted", "linux", "x64"]
    queued = sim.queue_job(repository="acme/app", labels=labels, duration=60, conclusion="success")
    runner, _ = sim.register(scope="acme/app", name="bm-1-abc", labels=labels, group_id=1)
    sim.connect(runner)
    sim.next_job(runner)
    clock.advance(sim.assign_seconds)
    sim.next_job(runner)
    clock.advance(state.LOST_AFTER_SECONDS + 1)
    sim.sweep_lost()  # the VM's host died with the job running: GitHub fails the job
    failed = await gh.job("acme/app", queued.id)
    assert failed is not None and (failed.conclusion, failed.runner_name) == ("failure", "bm-1-abc")
    vm = model.Vm(
        vm_id=1,
        name="bm-1-abc",
        pool="default",
        scope="acme/app",
        labels=tuple(labels),
        vcpus=2,
        memory_mib=4096,
        state=model.VmState.GONE,
        state_since=clock.now,
        created_at=clock.now - 100,
        death_reason=model.DeathReason.HOST_LOST,
    )
    pool = dataclasses.replace(fakes.POOL, rerun_infrastructure_failures=True)
    now = clock.now

    async def plan() -> list[act.RerunJob]:
        already = await reruns.already_rerun(store, now=now)
        return decide.plan_reruns(jobs=[failed], vms=[vm], pools=[pool], already=already, now=now)

    [rerun] = await plan()
    assert await reruns.perform_rerun(rerun, github=gh, store=store, now=now) == "rerun"
    [new] = await gh.open_jobs("acme/app")
    assert (new.id != failed.id, new.run_attempt, new.status.value) == (True, 2, "queued")
    assert await plan() == []
    await gh.close()
