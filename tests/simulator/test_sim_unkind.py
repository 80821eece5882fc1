"""The simulated GitHub is as unkind as the real one, and the client copes (replies checked
against GitHub's OpenAPI schema): lagging ``busy``, re-queued jobs, held and multi-job runs,
renamed/removed/forbidden repositories, secondary limits, permission 403s, runner groups."""

from __future__ import annotations

import httpx2
import pytest

from blacksmith_mini.github import errors
from blacksmith_mini.simulator import state
from github import simfixture

pytestmark = pytest.mark.anyio
LABELS = ["self-hosted", "linux"]


def started(sim: state.SimState, clock: simfixture.Clock, runner: state.SimRunner) -> None:
    """Let ``runner`` take a job and start it (through the assigned phase)."""
    sim.connect(runner)
    sim.next_job(runner)
    clock.advance(sim.assign_seconds)
    assert sim.next_job(runner) is not None


async def test_rest_busy_and_job_status_lag_and_deleting_kills_the_job() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(clock=clock)
    sim.lag_seconds = 30
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=60, conclusion="success")
    clock.advance(1)
    registration = await gh.register_runner(
        "acme/app", name="bm-1-lag", labels=LABELS, runner_group_id=1
    )
    runner = sim.runners[registration.runner_id]
    started(sim, clock, runner)
    clock.advance(5)
    assert sim.jobs[job.id].status == "in_progress"  # the broker (and webhooks) are current
    seen = await gh.open_jobs("acme/app")
    assert [(j.status.value, j.runner_name) for j in seen] == [("queued", None)]
    [listed] = await gh.runners("acme/app", prefix="bm")
    assert (listed.busy, listed.status) == (False, "offline")
    # GitHub lets us delete a runner REST calls idle although it runs a job: the job fails.
    assert await gh.delete_runner("acme/app", registration.runner_id) is True
    assert sim.jobs[job.id].conclusion == "failure"
    assert sim.killed_busy_runners == 1
    clock.advance(31)
    finished = await gh.job("acme/app", job.id)
    assert finished is not None and finished.conclusion == "failure"
    simfixture.check_all(recorder)


async def test_lag_is_set_and_kills_counted_through_the_faults_endpoint() -> None:
    sim = state.SimState(repositories=["acme/app"])
    from blacksmith_mini.simulator import github_api

    app = github_api.create_app(sim, token="t")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sim"
    ) as http:
        changed = await http.post("/faults", json={"lag_seconds": 25, "assign_seconds": 0})
        assert changed.status_code == 200
        assert (sim.lag_seconds, sim.assign_seconds) == (25, 0)
        shown = (await http.get("/faults")).json()
        assert shown["lag_seconds"] == 25 and shown["killed_busy_runners"] == 0
        assert "requeued_jobs" in shown


async def test_a_runner_lost_before_its_job_started_sends_it_back_to_the_queue() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(clock=clock)
    changes: list[state.Change] = []
    sim.listeners.append(changes.append)
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    runner, _ = sim.register(scope="acme/app", name="bm-2-lost", labels=LABELS, group_id=1)
    sim.connect(runner)
    assert sim.next_job(runner) is None  # assigned
    assert (sim.jobs[job.id].status, sim.jobs[job.id].runner_name) == ("queued", "bm-2-lost")
    clock.advance(state.LOST_AFTER_SECONDS + 1)
    sim.sweep_lost()
    again = sim.jobs[job.id]
    assert (again.status, again.runner_name) == ("queued", None)
    assert [c.action for c in changes] == ["queued", "queued"]
    assert sim.counters["requeued_jobs"] == 1
    [seen] = await gh.open_jobs("acme/app")
    assert (seen.status.value, seen.runner_name) == ("queued", None)
    other, _ = sim.register(scope="acme/app", name="bm-3-next", labels=LABELS, group_id=1)
    started(sim, clock, other)
    assert sim.jobs[job.id].runner_name == "bm-3-next"
    simfixture.check_all(recorder)


async def test_deleting_an_assigned_runner_requeues_its_job() -> None:
    clock = simfixture.Clock()
    gh, sim, _, _ = simfixture.make(clock=clock)
    sim.lag_seconds = 10
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    registration = await gh.register_runner(
        "acme/app", name="bm-4-x", labels=LABELS, runner_group_id=1
    )
    runner = sim.runners[registration.runner_id]
    sim.connect(runner)
    sim.next_job(runner)
    assert await gh.delete_runner("acme/app", registration.runner_id) is True
    assert (sim.jobs[job.id].status, sim.jobs[job.id].runner_id) == ("queued", None)
    assert sim.killed_busy_runners == 0


async def test_a_started_job_of_a_lost_runner_fails() -> None:
    clock = simfixture.Clock()
    _, sim, _, _ = simfixture.make(clock=clock)
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=60, conclusion="success")
    runner, _ = sim.register(scope="acme/app", name="bm-5-x", labels=LABELS, group_id=1)
    started(sim, clock, runner)
    clock.advance(state.LOST_AFTER_SECONDS + 1)
    sim.sweep_lost()
    assert (sim.jobs[job.id].status, sim.jobs[job.id].conclusion) == ("completed", "failure")


async def test_runs_with_jobs_of_different_labels_and_held_runs() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(clock=clock)
    run = sim.queue_run(
        repository="acme/app",
        jobs=[(LABELS, 5, "success", "build"), (["self-hosted", "gpu"], 5, "success", "train")],
    )
    held = sim.queue_job(
        repository="acme/app", labels=LABELS, duration=5, conclusion="success", run_status="waiting"
    )
    assert sim.runs[held.run_id].status == "waiting"
    runner, _ = sim.register(scope="acme/app", name="bm-6-x", labels=LABELS, group_id=1)
    started(sim, clock, runner)
    build, train = (sim.jobs[i] for i in run.job_ids)
    assert (build.status, train.status) == ("in_progress", "queued")
    assert sim.runs[run.id].status == "in_progress"
    open_jobs = {j.id: j.status.value for j in await gh.open_jobs("acme/app")}
    assert open_jobs == {build.id: "in_progress", train.id: "queued", held.id: "queued"}
    simfixture.check_all(recorder)


async def test_held_run_is_listed_only_under_its_status() -> None:
    _, sim, _, _ = simfixture.make()
    from blacksmith_mini.simulator import github_api

    app = github_api.create_app(sim, token=simfixture.TOKEN)
    sim.queue_job(
        repository="acme/app", labels=LABELS, duration=5, conclusion="success", run_status="pending"
    )
    headers = {"authorization": f"token {simfixture.TOKEN}"}
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sim", headers=headers
    ) as http:
        counts = {
            status: (await http.get(f"/repos/acme/app/actions/runs?status={status}")).json()[
                "total_count"
            ]
            for status in ("queued", "in_progress", "pending", "waiting")
        }
        assert counts == {"queued": 0, "in_progress": 0, "pending": 1, "waiting": 0}
        made = await http.post(
            "/faults/runs",
            json={
                "repository": "acme/app",
                "run_status": "waiting",
                "jobs": [{"labels": LABELS, "duration": 2}, {"labels": ["gpu"], "name": "t"}],
            },
        )
        assert made.status_code == 201 and len(made.json()["job_ids"]) == 2
        assert made.json()["status"] == "waiting"


async def test_renamed_repository_redirects_and_the_client_follows() -> None:
    gh, sim, recorder, _ = simfixture.make()
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    sim.rename_repository("acme/app", "acme/renamed")
    jobs = await gh.open_jobs("acme/app")
    assert [j.id for j in jobs] == [job.id]
    assert gh.moved == {"acme/app": "acme/renamed"}
    assert any(e.status == 301 for e in recorder.exchanges)
    assert (await gh.job("acme/app", job.id)) is not None
    registration = await gh.register_runner(
        "acme/app", name="bm-7-x", labels=LABELS, runner_group_id=1
    )
    assert sim.runners[registration.runner_id].scope == "acme/renamed"
    simfixture.check_all(recorder)


async def test_redirect_is_followed_for_a_post_too() -> None:
    gh, sim, recorder, _ = simfixture.make()
    sim.rename_repository("acme/app", "other/app")  # transferred
    registration = await gh.register_runner(
        "acme/app", name="bm-8-x", labels=LABELS, runner_group_id=1
    )
    assert sim.runners[registration.runner_id].scope == "other/app"
    assert any(e.status == 307 for e in recorder.exchanges)
    assert gh.moved == {"acme/app": "other/app"}


async def test_removed_and_forbidden_repositories() -> None:
    gh, sim, _, _ = simfixture.make(("acme/app", "acme/infra"))
    sim.update_repository("acme/app", removed=True)
    with pytest.raises(errors.NotFound, match="acme/app"):
        await gh.open_jobs("acme/app")
    sim.update_repository("acme/infra", forbidden=True)
    with pytest.raises(errors.PermissionDenied, match="acme/infra"):
        await gh.runners("acme/infra", prefix="bm")
    assert gh.rate.blocked_until is None


@pytest.mark.parametrize("status", [403, 429])
async def test_secondary_rate_limit_faults(status: int) -> None:
    gh, _, recorder, faults = simfixture.make()
    faults.secondary_rate_limits, faults.secondary_rate_limit_status = 1, status
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    answer = recorder.exchanges[-1]
    assert answer.status == status and "retry-after" not in answer.response_headers
    if status == 403:
        assert int(answer.response_headers["x-ratelimit-remaining"]) > 0
    else:
        assert "x-ratelimit-remaining" not in answer.response_headers
    assert gh.rate.limit_kind == "secondary"
    assert gh.rate.blocked_until is not None
    assert gh.rate.blocked_until - gh.guard._clock() >= 59
    simfixture.check_all(recorder)


async def test_permission_denied_fault_blocks_nothing() -> None:
    gh, _, recorder, faults = simfixture.make()
    faults.permission_denied = 1
    with pytest.raises(errors.PermissionDenied, match="Administration: write"):
        await gh.runners("acme/app", prefix="bm")
    assert gh.rate.blocked_until is None
    assert await gh.runners("acme/app", prefix="bm") == []
    simfixture.check_all(recorder)


async def test_runner_groups_serve_only_their_repositories() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(("acme/app", "acme/infra", "acme/site"), clock=clock)
    sim.update_repository("acme/site", private=False)
    selected = sim.add_group("gpu", visibility="selected", repositories=["acme/infra"])
    sim.add_group("open", allows_public_repositories=True)
    site = sim.queue_job(repository="acme/site", labels=LABELS, duration=5, conclusion="success")
    app = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    infra = sim.queue_job(repository="acme/infra", labels=LABELS, duration=5, conclusion="success")
    gpu, _ = sim.register(scope="org:acme", name="bm-9-g", labels=LABELS, group_id=selected.id)
    default, _ = sim.register(scope="org:acme", name="bm-9-d", labels=LABELS, group_id=1)
    open_runner, _ = sim.register(scope="org:acme", name="bm-9-o", labels=LABELS, group_id=3)
    started(sim, clock, gpu)
    started(sim, clock, default)
    started(sim, clock, open_runner)
    assert gpu.job_id == infra.id  # not the older acme/site or acme/app jobs
    assert default.job_id == app.id  # the default group serves no public repository
    assert open_runner.job_id == site.id
    group = await gh.runner_group("acme", "gpu")
    assert (group.id, group.visibility, group.selected_repositories) == (
        selected.id,
        "selected",
        frozenset({"acme/infra"}),
    )
    default_group = await gh.runner_group("acme", "default")
    assert (default_group.visibility, default_group.allows_public_repositories) == ("all", False)
    assert default_group.selected_repositories is None
    assert await gh.organization_repository_visibility("acme") == {
        "acme/app": True,
        "acme/infra": True,
        "acme/site": False,
    }
    assert await gh.organization_repositories("acme") == ["acme/app", "acme/infra", "acme/site"]
    simfixture.check_all(recorder)


async def test_org_runner_never_takes_another_organizations_job() -> None:
    clock = simfixture.Clock()
    _, sim, _, _ = simfixture.make(("acme/app", "other/app"), clock=clock)
    sim.queue_job(repository="other/app", labels=LABELS, duration=5, conclusion="success")
    runner, _ = sim.register(scope="org:acme", name="bm-10-x", labels=LABELS, group_id=1)
    sim.connect(runner)
    clock.advance(1)
    assert sim.next_job(runner) is None and runner.job_id is None


async def test_state_with_repositories_and_groups_survives_a_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = state.SimState(repositories=["acme/app", "acme/infra"])
    sim.attach(tmp_path / "sim.json")
    sim.add_group("gpu", visibility="selected", repositories=["acme/infra"])
    sim.rename_repository("acme/app", "acme/renamed")
    sim.queue_job(repository="acme/renamed", labels=LABELS, duration=1, conclusion="success")
    again = state.SimState(repositories=["acme/app", "acme/infra"])
    again.attach(tmp_path / "sim.json")
    assert again.repositories == ["acme/renamed", "acme/infra"]
    assert again.moved("acme/app") is not None
    assert again.groups[2].repository_ids == [again.repository("acme/infra").id]  # type: ignore[union-attr]
    assert len(again.jobs) == 1
