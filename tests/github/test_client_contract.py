"""The adapter's requests and the simulator's replies agree with GitHub's documented shapes.

Every reply the simulator gives to the adapter is validated against GitHub's own OpenAPI
schema (``@octokit/openapi``, extracted into tests/fixtures), and so is every request body.
"""

from __future__ import annotations

import base64
import json

import pytest

from blacksmith_mini.github import auth, errors
from github import simfixture

pytestmark = pytest.mark.anyio


check_all = simfixture.check_all


async def test_full_runner_lifecycle_matches_github_schemas() -> None:
    clock = simfixture.Clock()
    gh, sim, recorder, _ = simfixture.make(clock=clock)
    job = sim.queue_job(
        repository="acme/app", labels=["self-hosted", "linux"], duration=1, conclusion="success"
    )
    jobs = await gh.open_jobs("acme/app")
    assert [(j.id, j.status.value) for j in jobs] == [(job.id, "queued")]
    registration = await gh.register_runner(
        "acme/app", name="bm-1-aaa", labels=["self-hosted", "linux", "x64"], runner_group_id=1
    )
    files = json.loads(base64.b64decode(registration.encoded_jit_config))
    assert set(files) == {".runner", ".credentials", ".credentials_rsaparams"}
    runner_file = json.loads(base64.b64decode(files[".runner"]))
    assert runner_file["agentName"] == "bm-1-aaa"
    runners = await gh.runners("acme/app", prefix="bm")
    assert [(r.name, r.status, r.busy) for r in runners] == [("bm-1-aaa", "offline", False)]
    simulated = sim.runners[registration.runner_id]
    sim.connect(simulated)
    assert sim.next_job(simulated) is None  # assigned: queued with a runner, not started
    assigned = await gh.open_jobs("acme/app")
    assert [(j.status.value, j.runner_name) for j in assigned] == [("assigned", "bm-1-aaa")]
    with pytest.raises(errors.RunnerBusy):
        await gh.delete_runner("acme/app", registration.runner_id)
    clock.advance(sim.assign_seconds)
    assert sim.next_job(simulated) is not None
    sim.complete(simulated, job.id, "success")
    finished = await gh.job("acme/app", job.id)
    assert finished is not None and finished.conclusion == "success"
    assert await gh.delete_runner("acme/app", registration.runner_id) is False  # gone already
    check_all(recorder)
    await gh.close()


async def test_duplicate_runner_name_is_409() -> None:
    gh, _, recorder, _ = simfixture.make()
    await gh.register_runner("acme/app", name="bm-2-x", labels=["self-hosted"], runner_group_id=1)
    with pytest.raises(errors.RunnerNameTaken):
        await gh.register_runner(
            "acme/app", name="bm-2-x", labels=["self-hosted"], runner_group_id=1
        )
    found = await gh.runner_by_name("acme/app", "bm-2-x")
    assert found is not None and found.name == "bm-2-x"
    check_all(recorder)


async def test_etag_makes_repeated_polls_304() -> None:
    gh, sim, recorder, _ = simfixture.make()
    sim.queue_job(repository="acme/app", labels=["self-hosted"], duration=1, conclusion="success")
    await gh.open_jobs("acme/app")
    await gh.open_jobs("acme/app")
    statuses = [e.status for e in recorder.exchanges]
    assert statuses.count(304) == len(statuses) // 2
    assert gh.rate.not_modified == statuses.count(304)
    assert gh.rate.conditional >= gh.rate.not_modified


async def test_pagination_follows_link_headers() -> None:
    gh, sim, recorder, _ = simfixture.make()
    for index in range(130):
        sim.register(scope="acme/app", name=f"bm-{index}-p", labels=["self-hosted"], group_id=1)
    runners = await gh.runners("acme/app", prefix="bm")
    assert len(runners) == 130
    listing = [e for e in recorder.exchanges if e.path.endswith("/runners")]
    assert len(listing) == 2 and 'rel="next"' in listing[0].response_headers["link"]
    check_all(recorder)


async def test_retry_after_blocks_calls_until_it_passes() -> None:
    gh, _, recorder, faults = simfixture.make()
    faults.rate_limits, faults.retry_after, faults.rate_limit_status = 1, 120, 429
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    sent = len(recorder.exchanges)
    with pytest.raises(errors.RateLimited) as blocked:
        await gh.open_jobs("acme/app")
    assert len(recorder.exchanges) == sent  # nothing sent while blocked
    assert blocked.value.until == pytest.approx(gh.rate.blocked_until)
    assert gh.rate.blocked_until is not None


async def test_ratelimit_reset_used_when_no_retry_after() -> None:
    gh, _, _, faults = simfixture.make()
    faults.rate_limits, faults.retry_after = 1, None
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    assert gh.rate.remaining == 0
    assert gh.rate.blocked_until == pytest.approx(gh.rate.reset_at, abs=2)


async def test_server_errors_are_unavailable_and_bad_token_is_explained() -> None:
    gh, _, _, faults = simfixture.make()
    faults.server_errors = 1
    with pytest.raises(errors.GitHubUnavailable):
        await gh.open_jobs("acme/app")
    bad, _, _, _ = simfixture.make()
    bad.tokens = auth.StaticToken("wrong")
    with pytest.raises(errors.BadCredentials, match="GITHUB_TOKEN"):
        await bad.open_jobs("acme/app")


async def test_jitconfig_body_rules() -> None:
    gh, _, _, _ = simfixture.make()
    with pytest.raises(errors.GitHubError, match="422"):
        await gh.register_runner("acme/app", name="bm-3-x", labels=[], runner_group_id=1)
    with pytest.raises(errors.NotFound):
        await gh.register_runner("acme/app", name="bm-3-x", labels=["a"], runner_group_id=99)


async def test_in_progress_runs_are_polled_too() -> None:
    clock = simfixture.Clock()
    gh, sim, _, _ = simfixture.make(clock=clock)
    first = sim.queue_job(
        repository="acme/app", labels=["self-hosted"], duration=1, conclusion="success"
    )
    runner, _ = sim.register(scope="acme/app", name="bm-9-z", labels=["self-hosted"], group_id=1)
    sim.connect(runner)
    sim.next_job(runner)
    clock.advance(sim.assign_seconds)
    sim.next_job(runner)
    jobs = await gh.open_jobs("acme/app")
    assert [(j.id, j.status.value, j.runner_name) for j in jobs] == [
        (first.id, "in_progress", "bm-9-z")
    ]
