"""``GitHubClient.rerun_job`` against the simulator and against answers only real GitHub gives.

GitHub's OpenAPI description (``actions/re-run-job-for-workflow-run``) documents 201 with an
empty object and 403; the 403's meanings are told apart here: a refusal ("This workflow is
already running", "... created over a month ago") is ``RerunRefused`` with GitHub's words, a
missing permission ("Resource not accessible by integration") is ``PermissionDenied`` naming
Actions: write, and a secondary rate limit is ``RateLimited``. Only ``GitHubError`` escapes.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from blacksmith_mini.github import client, errors
from blacksmith_mini.simulator import sim_rerun, state
from github import simfixture

pytestmark = pytest.mark.anyio
LABELS = ["self-hosted", "linux"]
API = "https://api.github.com"
BUDGET = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990", "x-ratelimit-reset": "0"}
# The operation's request body as GitHub's OpenAPI gives it (nullable object of booleans).
REQUEST_FIELDS = {"enable_debug_logging", "enable_debugger"}


def failed_job(sim: state.SimState, clock: simfixture.Clock) -> state.SimJob:
    job = sim.queue_job(repository="acme/app", labels=LABELS, duration=5, conclusion="success")
    runner, _ = sim.register(scope="acme/app", name=f"bm-x-{job.id}", labels=LABELS, group_id=1)
    sim.connect(runner)
    sim.next_job(runner)
    clock.advance(sim.assign_seconds)
    sim.next_job(runner)
    sim.complete(runner, job.id, "failure")
    return job


def rerun_exchanges(recorder: simfixture.Recorder) -> list[simfixture.Exchange]:
    return [e for e in recorder.exchanges if e.path.endswith("/rerun")]


async def test_a_rerun_is_one_post_with_githubs_headers_and_a_201() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(clock=clock)
    job = failed_job(sim, clock)
    assert await gh.rerun_job("acme/app", job.id) is None
    [exchange] = rerun_exchanges(recorder)
    assert (exchange.method, exchange.status, exchange.body) == ("POST", 201, {})
    assert exchange.request_headers["x-github-api-version"] == "2022-11-28"
    assert exchange.request_headers["accept"].startswith("application/vnd.github")
    body = exchange.request_body
    assert body is None or (isinstance(body, dict) and set(body) <= REQUEST_FIELDS)
    [new] = await gh.open_jobs("acme/app")
    assert (new.id != job.id, new.run_attempt, new.status.value) == (True, 2, "queued")


async def test_a_run_still_in_progress_is_a_refusal_that_may_pass_later() -> None:
    clock = simfixture.Clock()
    gh, sim, _, _ = simfixture.make(clock=clock)
    job = failed_job(sim, clock)
    await gh.rerun_job("acme/app", job.id)
    with pytest.raises(errors.RerunRefused) as refused:
        await gh.rerun_job("acme/app", job.id)  # its new attempt is queued
    assert (refused.value.status, refused.value.reason) == (403, sim_rerun.ALREADY_RUNNING)
    assert refused.value.still_running
    assert "whole run has completed" in str(refused.value)
    assert gh.rate.blocked_until is None  # a refusal blocks no other request


async def test_a_run_past_the_window_and_an_unknown_job_are_refusals() -> None:
    clock = simfixture.Clock()
    gh, sim, _, _ = simfixture.make(clock=clock)
    job = failed_job(sim, clock)
    clock.advance(sim_rerun.WINDOW_SECONDS + 1)
    with pytest.raises(errors.RerunRefused) as old:
        await gh.rerun_job("acme/app", job.id)
    assert old.value.status == 403 and not old.value.still_running
    assert "over a month ago" in old.value.reason and "30 days" in str(old.value)
    with pytest.raises(errors.RerunRefused) as unknown:
        await gh.rerun_job("acme/app", 424242)
    assert unknown.value.status == 404


async def test_a_missing_permission_names_actions_write() -> None:
    clock = simfixture.Clock()
    gh, sim, _, faults = simfixture.make(clock=clock)
    job = failed_job(sim, clock)
    faults.permission_denied = 1
    with pytest.raises(errors.PermissionDenied) as denied:
        await gh.rerun_job("acme/app", job.id)
    assert "Actions: write" in str(denied.value) and "acme/app" in str(denied.value)
    assert not isinstance(denied.value, errors.RerunRefused)
    assert "Actions: write" in errors.permission_hint(
        f"/repos/acme/app/actions/jobs/{job.id}/rerun", app=True
    )


async def test_a_renamed_repository_is_followed_for_the_post() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(clock=clock)
    job = failed_job(sim, clock)
    sim.rename_repository("acme/app", "acme/renamed")
    await gh.rerun_job("acme/app", job.id)
    assert [e.status for e in rerun_exchanges(recorder)] == [307, 201]
    assert gh.moved == {"acme/app": "acme/renamed"}


def hand_made(status: int, body: Any, headers: dict[str, str] | None = None) -> client.GitHubClient:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            status,
            headers={"content-type": "application/json; charset=utf-8"} | (headers or {}),
            content=json.dumps(body).encode(),
        )

    return client.GitHubClient(
        token="t", api_url=API, inner_transport=httpx2.MockTransport(answer), mutation_spacing=0
    )


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (422, {"message": "Validation Failed", "errors": "job is not rerunnable"}, BUDGET, 422),
        (403, {"message": "This workflow run cannot be retried"}, BUDGET, 403),
        (410, {"message": "Gone"}, BUDGET, 410),
    ],
)
async def test_other_refusals_carry_githubs_status_and_words(
    status: int, body: dict[str, str], headers: dict[str, str], expected: int
) -> None:
    gh = hand_made(status, body, headers)
    with pytest.raises(errors.RerunRefused) as refused:
        await gh.rerun_job("acme/app", 1)
    assert refused.value.status == expected
    assert body["message"] in refused.value.reason


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind"),
    [
        (403, {"message": "You have exceeded a secondary rate limit."}, BUDGET, errors.RateLimited),
        (429, {"message": "Too many"}, {}, errors.RateLimited),
        (
            403,
            {"message": "API rate limit exceeded"},
            BUDGET | {"x-ratelimit-remaining": "0"},
            errors.RateLimited,
        ),
        (502, {"message": "Server Error"}, BUDGET, errors.GitHubUnavailable),
        (401, {"message": "Bad credentials"}, BUDGET, errors.BadCredentials),
        (
            403,
            {"message": "Resource not accessible by personal access token"},
            BUDGET,
            errors.PermissionDenied,
        ),
    ],
)
async def test_limits_outages_and_credentials_are_not_refusals(
    status: int, body: dict[str, str], headers: dict[str, str], kind: type[errors.GitHubError]
) -> None:
    gh = hand_made(status, body, headers)
    with pytest.raises(kind) as raised:
        await gh.rerun_job("acme/app", 1)
    assert not isinstance(raised.value, errors.RerunRefused)


async def test_garbage_and_a_dead_network_raise_only_github_errors() -> None:
    def broken(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused")

    gh = client.GitHubClient(
        token="t", api_url=API, inner_transport=httpx2.MockTransport(broken), mutation_spacing=0
    )
    with pytest.raises(errors.GitHubUnavailable):
        await gh.rerun_job("acme/app", 1)
    odd = client.GitHubClient(
        token="t",
        api_url=API,
        inner_transport=httpx2.MockTransport(lambda r: httpx2.Response(418, content=b"<html>")),
        mutation_spacing=0,
    )
    with pytest.raises(errors.GitHubError):
        await odd.rerun_job("acme/app", 1)
