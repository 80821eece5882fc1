"""The simulated GitHub re-runs a job as GitHub does: a new attempt with a new job, refused
while the run is still in progress or past the 30-day window, and announced by webhook."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from blacksmith_mini.simulator import github_api, sim_rerun, state, webhook_sender
from github import simfixture

pytestmark = pytest.mark.anyio
LABELS = ["self-hosted", "linux"]
HEADERS = {"authorization": f"token {simfixture.TOKEN}"}


def finished(sim: state.SimState, clock: simfixture.Clock, *, job_id: int, conclusion: str) -> None:
    """A runner takes the job, starts it and reports ``conclusion``."""
    job = sim.jobs[job_id]
    runner, _ = sim.register(
        scope=job.repository, name=f"bm-run-{job_id}", labels=job.labels, group_id=1
    )
    sim.connect(runner)
    sim.next_job(runner)
    clock.advance(sim.assign_seconds)
    assert sim.next_job(runner) is not None
    sim.complete(runner, job_id, conclusion)


def http_for(sim: state.SimState) -> httpx2.AsyncClient:
    app = github_api.create_app(sim, token=simfixture.TOKEN)
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sim", headers=HEADERS
    )


async def post_rerun(http: httpx2.AsyncClient, job_id: int, **kwargs: Any) -> httpx2.Response:
    return await http.post(f"/repos/acme/app/actions/jobs/{job_id}/rerun", **kwargs)


async def test_a_rerun_is_a_new_job_in_a_new_attempt_and_the_old_job_keeps_its_result() -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app"], clock=clock)
    old = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    finished(sim, clock, job_id=old.id, conclusion="failure")
    assert sim.runs[old.run_id].status == "completed"
    async with http_for(sim) as http:
        answer = await post_rerun(http, old.id)
        assert (answer.status_code, answer.json()) == (201, {})
        listed = (await http.get(f"/repos/acme/app/actions/runs/{old.run_id}/jobs")).json()
        [new] = listed["jobs"]
        assert new["id"] != old.id
        assert (new["name"], new["labels"], new["run_attempt"]) == ("build", LABELS, 2)
        assert (new["status"], new["conclusion"], new["runner_name"]) == ("queued", None, None)
        kept = (await http.get(f"/repos/acme/app/actions/jobs/{old.id}")).json()
        assert (kept["status"], kept["conclusion"], kept["run_attempt"]) == (
            "completed",
            "failure",
            1,
        )
        queued = (await http.get("/repos/acme/app/actions/runs?status=queued")).json()
        assert [run["id"] for run in queued["workflow_runs"]] == [old.run_id]
        assert queued["workflow_runs"][0]["conclusion"] is None


async def test_the_rerun_job_is_taken_by_a_runner_like_any_queued_job() -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app"], clock=clock)
    old = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    finished(sim, clock, job_id=old.id, conclusion="failure")
    new = sim_rerun.rerun_job(sim, repository="acme/app", job_id=old.id)
    finished(sim, clock, job_id=new.id, conclusion="success")
    run = sim.runs[old.run_id]
    assert (run.status, run.conclusion, run.job_ids) == ("completed", "success", [new.id])
    assert sim.jobs[old.id].conclusion == "failure"


async def test_a_job_of_a_run_still_in_progress_is_refused_as_github_does() -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app"], clock=clock)
    run = sim.queue_run(
        repository="acme/app", jobs=[(LABELS, 5, "success", "build"), (LABELS, 5, "ok", "test")]
    )
    build, test = run.job_ids
    finished(sim, clock, job_id=build, conclusion="failure")
    async with http_for(sim) as http:
        answer = await post_rerun(http, build)
        assert answer.status_code == 403
        assert answer.json()["message"] == "This workflow is already running"
        assert answer.headers["x-ratelimit-remaining"] != "0"  # a refusal, no rate limit
    assert sim.runs[run.id].job_ids == [build, test]
    finished(sim, clock, job_id=test, conclusion="success")
    assert sim_rerun.rerun_job(sim, repository="acme/app", job_id=build).run_attempt == 2


async def test_refusals_past_the_window_for_an_old_attempt_and_for_unknown_jobs() -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app", "acme/other"], clock=clock)
    old = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    elsewhere = sim.queue_job(repository="acme/other", labels=LABELS, duration=5, conclusion="x")
    finished(sim, clock, job_id=old.id, conclusion="failure")
    async with http_for(sim) as http:
        assert (await post_rerun(http, 999)).status_code == 404
        assert (await post_rerun(http, elsewhere.id)).status_code == 404
        assert (await post_rerun(http, old.id)).status_code == 201
        assert (await post_rerun(http, old.id)).json()["message"] == sim_rerun.ALREADY_RUNNING
        [new_id] = sim.runs[old.run_id].job_ids
        finished(sim, clock, job_id=new_id, conclusion="success")
        superseded = await post_rerun(http, old.id)  # a later attempt replaced it
        assert superseded.status_code == 403
        assert superseded.json()["message"] == sim_rerun.CANNOT_RETRY
        later = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="ok")
        finished(sim, clock, job_id=later.id, conclusion="failure")
        clock.advance(sim_rerun.WINDOW_SECONDS + 1)
        too_old = await post_rerun(http, later.id)
        assert too_old.status_code == 403
        assert "created over a month ago" in too_old.json()["message"]


async def test_a_run_is_rerun_at_most_fifty_times() -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app"], clock=clock)
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    finished(sim, clock, job_id=job.id, conclusion="failure")
    for _ in range(sim_rerun.MAX_RERUNS):
        job = sim_rerun.rerun_job(sim, repository="acme/app", job_id=job.id)
        finished(sim, clock, job_id=job.id, conclusion="failure")
    assert job.run_attempt == sim_rerun.MAX_RERUNS + 1
    with pytest.raises(sim_rerun.Refused) as refused:
        sim_rerun.rerun_job(sim, repository="acme/app", job_id=job.id)
    assert refused.value.status == 403


async def test_the_request_body_is_checked() -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app"], clock=clock)
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    finished(sim, clock, job_id=job.id, conclusion="failure")
    async with http_for(sim) as http:
        assert (await post_rerun(http, job.id, content=b"{nope")).status_code == 400
        wrong = await post_rerun(http, job.id, json={"enable_debug_logging": "yes"})
        assert wrong.status_code == 422
        assert (await post_rerun(http, job.id, content=b"null")).status_code == 201


async def test_the_new_job_is_announced_by_a_queued_webhook_and_survives_a_restart(
    tmp_path: Any,
) -> None:
    clock = simfixture.Clock()
    sim = state.SimState(repositories=["acme/app"], clock=clock)
    sim.attach(tmp_path / "sim.json")
    delivered: list[dict[str, Any]] = []

    def receive(request: httpx2.Request) -> httpx2.Response:
        delivered.append(json.loads(request.content))
        return httpx2.Response(202)

    sender = webhook_sender.WebhookSender(
        sim, url="http://us.test/hook", secret="s", transport=httpx2.MockTransport(receive)
    )
    old = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    finished(sim, clock, job_id=old.id, conclusion="failure")
    await sender.drain()
    delivered.clear()
    new = sim_rerun.rerun_job(sim, repository="acme/app", job_id=old.id)
    await sender.drain()
    [hook] = delivered
    assert hook["action"] == "queued"
    assert (hook["workflow_job"]["id"], hook["workflow_job"]["run_attempt"]) == (new.id, 2)
    assert hook["workflow_job"]["labels"] == LABELS
    await sender.close()
    again = state.SimState(repositories=["acme/app"], clock=clock)
    again.attach(tmp_path / "sim.json")
    assert again.runs[old.run_id].job_ids == [new.id]
    assert (again.jobs[new.id].run_attempt, again.jobs[old.id].conclusion) == (2, "failure")
