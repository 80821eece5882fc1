"""A GitHub client wired to the in-process simulator, recording every exchange."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import httpx2

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
]


def operation_for(method: str, path: str) -> str:
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


def make(
    repositories: tuple[str, ...] = ("acme/app",),
) -> tuple[client.GitHubClient, state.SimState, Recorder, github_api.Faults]:
    sim = state.SimState(repositories=repositories)
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
