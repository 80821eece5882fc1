"""The client against hand-made answers real GitHub gives and kind fakes forget.

Secondary rate limits without ``retry-after``, permission 403s, 301 for renamed repositories,
malformed replies: every public method raises only ``errors.GitHubError`` subclasses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from blacksmith_mini.github import client, errors

pytestmark = pytest.mark.anyio
API = "https://api.github.com"
SECONDARY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you"
    " try again. If you reach out to GitHub Support for help, please include the request ID.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}
NO_ACCESS = {
    "message": "Resource not accessible by integration",
    "documentation_url": "https://docs.github.com/rest/actions/self-hosted-runners",
}
BUDGET = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990", "x-ratelimit-reset": "0"}
EMPTY_RUNS = {"total_count": 0, "workflow_runs": []}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Handler = Callable[[httpx2.Request], httpx2.Response]


def make(handler: Handler) -> tuple[client.GitHubClient, Clock, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request)

    gh = client.GitHubClient(
        token="t", api_url=API, inner_transport=httpx2.MockTransport(record), mutation_spacing=0
    )
    clock = Clock()
    gh.guard._clock = clock
    return gh, clock, seen


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx2.Response:
    content = b"" if body is None else json.dumps(body).encode()
    base = {"content-type": "application/json; charset=utf-8"} if body is not None else {}
    return httpx2.Response(status, headers=base | (headers or {}), content=content)


async def test_secondary_403_without_retry_after_blocks_60s_and_doubles() -> None:
    answers = [reply(403, SECONDARY, BUDGET), reply(403, SECONDARY, BUDGET)]
    gh, clock, seen = make(lambda r: answers.pop(0) if answers else reply(200, EMPTY_RUNS, BUDGET))
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    assert gh.rate.blocked_until == pytest.approx(clock.now + 60)
    assert gh.rate.last_error is not None and "secondary" in gh.rate.last_error
    sent = len(seen)
    with pytest.raises(errors.RateLimited):
        await gh.runners("acme/app", prefix="bm")
    assert len(seen) == sent  # blocked: nothing sent
    clock.now += 61
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    assert gh.rate.blocked_until == pytest.approx(clock.now + 120)
    clock.now += 121
    assert await gh.open_jobs("acme/app") == []
    assert gh.rate.blocked_until is None and gh.rate.consecutive_limits == 0


async def test_secondary_limits_cap_at_thirty_minutes() -> None:
    gh, clock, _ = make(lambda r: reply(403, SECONDARY, BUDGET))
    for _ in range(8):
        with pytest.raises(errors.RateLimited):
            await gh.open_jobs("acme/app")
        clock.now = (gh.rate.blocked_until or clock.now) + 1
    assert gh.rate.blocked_until is not None
    assert gh.rate.blocked_until - (clock.now - 1) <= 1800


async def test_bare_429_is_a_secondary_limit() -> None:
    gh, clock, _ = make(lambda r: httpx2.Response(429))
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    assert gh.rate.blocked_until == pytest.approx(clock.now + 60)
    assert gh.rate.last_error is not None and "secondary" in gh.rate.last_error


async def test_primary_limit_is_named_primary() -> None:
    headers = BUDGET | {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000300"}
    gh, _, _ = make(lambda r: reply(403, {"message": "API rate limit exceeded"}, headers))
    with pytest.raises(errors.RateLimited):
        await gh.open_jobs("acme/app")
    assert gh.rate.blocked_until == pytest.approx(1000300)
    assert gh.rate.last_error is not None and "primary" in gh.rate.last_error


@pytest.mark.parametrize(
    ("body", "scope", "needs"),
    [
        (NO_ACCESS, "acme/app", "Administration: write"),
        ({"message": "Must have admin rights to Repository."}, "acme/app", "Administration"),
        (NO_ACCESS, "org:acme", "Self-hosted runners"),
    ],
)
async def test_permission_403_is_permission_denied_and_blocks_nothing(
    body: dict[str, str], scope: str, needs: str
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/runners"):
            return reply(403, body, BUDGET)
        return reply(200, EMPTY_RUNS, BUDGET)

    gh, _, _ = make(handler)
    with pytest.raises(errors.PermissionDenied) as denied:
        await gh.runners(scope, prefix="bm")
    assert not isinstance(denied.value, errors.RateLimited)
    assert needs in str(denied.value) and scope.removeprefix("org:") in str(denied.value)
    assert gh.rate.blocked_until is None
    assert await gh.open_jobs("acme/app") == []  # other requests go on


async def test_renamed_repository_is_followed_and_recorded() -> None:
    run = {"id": 5, "status": "queued"}
    job = {
        "id": 9,
        "run_id": 5,
        "status": "queued",
        "labels": ["self-hosted"],
        "created_at": "2026-01-01T00:00:00Z",
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        if path.startswith("/repos/acme/app/"):
            rest = path.removeprefix("/repos/acme/app")
            location = f"{API}/repositories/123{rest}?{request.url.query.decode()}"
            return reply(
                301, {"message": "Moved Permanently", "url": location}, {"location": location}
            )
        if path == "/repositories/123":
            return reply(200, {"id": 123, "full_name": "acme/renamed"}, BUDGET)
        if path == "/repositories/123/actions/runs":
            wanted = request.url.params.get("status")
            runs = [run] if wanted == "queued" else []
            return reply(200, {"total_count": len(runs), "workflow_runs": runs}, BUDGET)
        if path == "/repositories/123/actions/runs/5/jobs" or path.startswith(
            "/repos/acme/renamed/actions/runs/5/jobs"
        ):
            return reply(200, {"total_count": 1, "jobs": [job]}, BUDGET)
        if path.startswith("/repos/acme/renamed/"):
            return reply(200, EMPTY_RUNS, BUDGET)
        return reply(404, {"message": "Not Found"}, BUDGET)

    gh, _, _ = make(handler)
    jobs = await gh.open_jobs("acme/app")
    assert [j.id for j in jobs] == [9]
    assert gh.moved == {"acme/app": "acme/renamed"}


async def test_redirect_elsewhere_or_in_a_loop_is_a_github_error() -> None:
    def elsewhere(request: httpx2.Request) -> httpx2.Response:
        return reply(301, {"message": "Moved"}, {"location": "https://evil.example/x"})

    gh, _, _ = make(elsewhere)
    with pytest.raises(errors.GitHubError, match="301"):
        await gh.open_jobs("acme/app")

    def loop(request: httpx2.Request) -> httpx2.Response:
        return reply(302, {"message": "Found"}, {"location": f"{API}/repositories/1/x"})

    gh, _, _ = make(loop)
    with pytest.raises(errors.GitHubError):
        await gh.job("acme/app", 1)


@pytest.mark.parametrize(
    "answer",
    [
        lambda: httpx2.Response(200, headers={"content-type": "application/json"}, content=b"{x"),
        lambda: reply(200, {"total_count": 1, "runners": [{"id": "not-a-number"}]}, BUDGET),
        lambda: reply(200, {"total_count": 1, "runners": [None]}, BUDGET),
        lambda: httpx2.Response(307),
        lambda: reply(200, [1, 2], BUDGET),
    ],
)
async def test_malformed_replies_raise_github_errors_only(answer: Callable[[], Any]) -> None:
    gh, _, _ = make(lambda r: answer())
    calls = [
        lambda: gh.runners("acme/app", prefix="bm"),
        lambda: gh.runner_by_name("acme/app", "bm-1"),
        lambda: gh.job("acme/app", 1),
        lambda: gh.open_jobs("acme/app"),
        lambda: gh.register_runner("acme/app", name="bm-1", labels=["x"], runner_group_id=1),
        lambda: gh.runner_group_id("acme", "Default"),
        lambda: gh.runner_group("acme", "Default"),
        lambda: gh.organization_repositories("acme"),
        lambda: gh.organization_repository_visibility("acme"),
    ]
    for call in calls:
        try:
            await call()
        except errors.GitHubError:
            continue


async def test_unexpected_data_names_the_url() -> None:
    gh, _, _ = make(lambda r: reply(200, {"total_count": 1, "runners": [{"id": "x"}]}, BUDGET))
    with pytest.raises(errors.GitHubError, match=r"unexpected data on .*/runners"):
        await gh.runners("acme/app", prefix="bm")


async def test_missing_repository_404_names_it_and_the_fix() -> None:
    gh, _, _ = make(lambda r: reply(404, {"message": "Not Found"}, BUDGET))
    with pytest.raises(errors.NotFound, match="acme/app") as missing:
        await gh.open_jobs("acme/app")
    assert "github.repositories" in str(missing.value) or "installed" in str(missing.value)


async def test_runs_held_in_requested_waiting_or_pending_are_listed() -> None:
    job = {
        "id": 9,
        "run_id": 5,
        "status": "queued",
        "labels": ["self-hosted"],
        "created_at": "2026-01-01T00:00:00Z",
    }

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/actions/runs"):
            held = request.url.params.get("status") in ("waiting", "pending")
            runs = [{"id": 5, "status": request.url.params["status"]}] if held else []
            return reply(200, {"total_count": len(runs), "workflow_runs": runs}, BUDGET)
        return reply(200, {"total_count": 1, "jobs": [job]}, BUDGET)

    gh, _, _ = make(handler)
    assert [j.id for j in await gh.open_jobs("acme/app")] == [9]  # once, not twice
