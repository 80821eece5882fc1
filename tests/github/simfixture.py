"""A GitHub client wired to the in-process simulator, recording every exchange."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import httpx2

import github_schema
from blacksmith_mini.github import client
from blacksmith_mini.simulator import github_api, state

TOKEN = "sim-token-for-tests"
OPERATIONS = [
    ("GET", r"/repos/[^/]+/[^/]+/actions/runs", "actions/list-workflow-runs-for-repo"),
    ("GET", r"/repos/[^/]+/[^/]+/actions/runs/\d+/jobs", "actions/list-jobs-for-workflow-run"),
    ("GET", r"/repos/[^/]+/[^/]+/actions/jobs/\d+", "actions/get-job-for-workflow-run"),
    ("GET", r"/repos/[^/]+/[^/]+/actions/runners", "actions/list-self-hosted-runners-for-repo"),
    ("GET", r"/orgs/[^/]+/actions/runners", "actions/list-self-hosted-runners-for-org"),
    (
        "POST",
        r"/repos/[^/]+/[^/]+/actions/runners/generate-jitconfig",
        "actions/generate-runner-jitconfig-for-repo",
    ),
    (
        "POST",
        r"/orgs/[^/]+/actions/runners/generate-jitconfig",
        "actions/generate-runner-jitconfig-for-org",
    ),
    (
        "DELETE",
        r"/repos/[^/]+/[^/]+/actions/runners/\d+",
        "actions/delete-self-hosted-runner-from-repo",
    ),
    ("DELETE", r"/orgs/[^/]+/actions/runners/\d+", "actions/delete-self-hosted-runner-from-org"),
    ("GET", r"/rate_limit", "rate-limit/get"),
    ("GET", r"/orgs/[^/]+/actions/runner-groups", "actions/list-self-hosted-runner-groups-for-org"),
    (
        "GET",
        r"/orgs/[^/]+/actions/runner-groups/\d+",
        "actions/get-self-hosted-runner-group-for-org",
    ),
    (
        "GET",
        r"/orgs/[^/]+/actions/runner-groups/\d+/repositories",
        "actions/list-repo-access-to-self-hosted-runner-group-in-org",
    ),
    ("GET", r"/installation/repositories", "apps/list-repos-accessible-to-installation"),
    ("GET", r"/orgs/[^/]+/repos", "repos/list-for-org"),
    ("GET", r"/repos/owner/repo", "undocumented"),  # GET /repositories/{id}
]
# GitHub's OpenAPI does not describe /repositories/{id}/...: it answers like /repos/{o}/{r}/...
BY_ID = re.compile(r"^/repositories/\d+")


def operation_for(method: str, path: str) -> str:
    path = BY_ID.sub("/repos/owner/repo", path)
    for verb, pattern, operation in OPERATIONS:
        if verb == method and re.fullmatch(pattern, path):
            return operation
    raise AssertionError(f"no GitHub operation for {method} {path}")


@dataclasses.dataclass
class Exchange:
    method: str
    path: str
    request_headers: dict[str, str]
    request_body: Any
    status: int
    response_headers: dict[str, str]
    body: Any


class Recorder(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self.inner.handle_async_request(request)
        raw = await response.aread()
        content = request.content
        self.exchanges.append(
            Exchange(
                method=request.method,
                path=request.url.path,
                request_headers=dict(request.headers),
                request_body=json.loads(content) if content else None,
                status=response.status_code,
                response_headers=dict(response.headers),
                body=json.loads(raw) if raw else None,
            )
        )
        return httpx2.Response(
            status_code=response.status_code, headers=response.headers, content=raw
        )


class Clock:
    """An injectable clock for the simulated GitHub: time moves only when told."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(
    repositories: tuple[str, ...] = ("acme/app",),
    *,
    clock: Clock | None = None,
) -> tuple[client.GitHubClient, state.SimState, Recorder, github_api.Faults]:
    sim = state.SimState(repositories=repositories, clock=clock or Clock())
    faults = github_api.Faults()
    app = github_api.create_app(sim, token=TOKEN, faults=faults)
    recorder = Recorder(httpx2.ASGITransport(app=app))
    gh = client.GitHubClient(
        token=TOKEN,
        api_url="http://github.test",
        inner_transport=recorder,
        mutation_spacing=0.0,
    )
    return gh, sim, recorder, faults


def check_all(recorder: Recorder) -> None:
    assert recorder.exchanges
    for exchange in recorder.exchanges:
        operation = operation_for(exchange.method, exchange.path)
        if operation == "undocumented":
            assert exchange.body["full_name"]
            continue
        assert exchange.request_headers["x-github-api-version"] == "2022-11-28"
        assert exchange.request_headers["accept"].startswith("application/vnd.github")
        assert exchange.request_headers["authorization"] == f"token {TOKEN}"
        if exchange.status == 304:
            continue
        documented = github_schema.load_operation(operation)["responses"]
        if exchange.status >= 300 and str(exchange.status) not in documented:
            # GitHub answers errors it does not document per operation (404, 401, 429, 5xx),
            # and redirects (301, 307), with its "basic error" body.
            assert set(exchange.body) >= {"message", "documentation_url"}, exchange.body
            continue
        github_schema.validate_response(operation, exchange.status, exchange.body)
        if exchange.request_body is not None:
            github_schema.validate_request_body(operation, exchange.request_body)
