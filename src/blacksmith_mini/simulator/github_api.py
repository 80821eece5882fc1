"""The simulated GitHub's HTTP face: GitHub's rules applied to every REST call, plus the routes
of ``sim_rest`` (Actions), ``sim_org`` (App, organizations, runner groups), ``sim_broker`` (what
simulated runners talk to) and ``sim_controls`` (``/faults``).

REST behaviour kept from GitHub: ``Authorization`` required (401 "Bad credentials"), rate-limit
headers on every answer, ``ETag`` with ``If-None-Match`` -> 304 (not charged), ``link``
pagination with ``per_page`` capped at 100, 409 on a duplicate runner name, 422 on deleting a
busy runner or a malformed JIT request, 404 on unknown ids. A renamed or transferred
repository's old paths answer 301 (307 for other methods) to ``/repositories/{id}/...``, which
serves it; a removed one 404; a forbidden one 403 "Resource not accessible by integration".
``Faults`` injects 5xx, primary and secondary rate limits (the latter without ``retry-after``)
and permission 403s for tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import secrets
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.simulator import state, webhook_sender
from blacksmith_mini.simulator.sim_app import SimApp as SimApp
from blacksmith_mini.simulator.sim_broker import broker_routes
from blacksmith_mini.simulator.sim_controls import control_routes
from blacksmith_mini.simulator.sim_http import DOCS, error
from blacksmith_mini.simulator.sim_org import org_routes
from blacksmith_mini.simulator.sim_rerun import rerun_routes
from blacksmith_mini.simulator.sim_rest import actions_routes

SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    " If you reach out to GitHub Support for help, please include the request ID."
)
SECONDARY_DOCS = (
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
NO_ACCESS = "Resource not accessible by integration"
REPO_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)(/.*)?$")
ID_PATH = re.compile(r"^/repositories/(\d+)(/.*)?$")


@dataclasses.dataclass
class Faults:
    """Injected failures: the next N REST calls answer 5xx, a rate limit or a 403."""

    server_errors: int = 0
    rate_limits: int = 0  # primary: x-ratelimit-remaining 0
    rate_limit_status: int = 403
    retry_after: int | None = 60
    secondary_rate_limits: int = 0  # 403 "secondary rate limit", budget left, no retry-after
    secondary_rate_limit_status: int = 403  # 429: the variant with no rate headers at all
    permission_denied: int = 0  # 403 "Resource not accessible by integration"
    delay_seconds: float = 0.0  # every REST answer waits this long (time-outs)
    until: float = 0.0  # while now < until, every REST call answers 5xx (an outage)


@dataclasses.dataclass
class Budget:
    limit: int = 15000  # a GitHub App installation on Enterprise Cloud (a token: 5,000)
    used: int = 0
    window_start: float = dataclasses.field(default_factory=time.time)

    def headers(self, now: float) -> dict[str, str]:
        if now - self.window_start >= 3600:
            self.window_start, self.used = now, 0
        reset = int(self.window_start + 3600)
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(max(0, self.limit - self.used)),
            "x-ratelimit-used": str(self.used),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        }


_error = error


def _needs_jwt(path: str) -> bool:
    return path == "/app" or path.startswith("/app/") or path.endswith("/installation")


def create_app(
    sim: state.SimState,
    *,
    token: str,
    faults: Faults | None = None,
    sim_app: SimApp | None = None,
    sender: webhook_sender.WebhookSender | None = None,
) -> FastAPI:
    """The fake GitHub (REST at ``/``, broker at ``/broker``)."""
    app = FastAPI(title="Simulated GitHub", docs_url=None, redoc_url=None, openapi_url=None)
    budget = Budget()
    app.state.faults = faults or Faults()
    app.state.budget = budget
    app.state.sender = sender

    def route_repository(request: Request, relative: str) -> Response | None:
        """Serve ``/repositories/{id}/...`` as the repository's current path; answer a former
        name with a redirect there, a forbidden repository with 403."""
        root = request.scope.get("root_path", "")
        by_id = ID_PATH.match(relative)
        if by_id:
            found = sim.repos.get(int(by_id[1]))
            if found is None or found.removed:
                return _error(404, "Not Found")
            relative = f"/repos/{found.full_name}{by_id[2] or ''}"
            request.scope["path"] = root + relative
            request.scope["raw_path"] = (root + relative).encode()
        matched = REPO_PATH.match(relative)
        if matched is None:
            return None
        name = f"{matched[1]}/{matched[2]}"
        current = sim.repository(name)
        if current is not None:
            return _error(403, NO_ACCESS) if current.forbidden else None
        repo = sim.moved(name)
        if repo is None:
            return None  # the route answers 404
        location = str(request.url.replace(path=f"{root}/repositories/{repo.id}{matched[3] or ''}"))
        status = 301 if request.method in ("GET", "HEAD") else 307
        body = {"message": "Moved Permanently", "url": location, "documentation_url": DOCS}
        return JSONResponse(body, status_code=status, headers={"location": location})

    @app.middleware("http")
    async def github_rules(request: Request, call_next: Any) -> Response:
        relative = request.url.path.removeprefix(request.scope.get("root_path", ""))
        if relative.startswith(("/broker", "/faults")):
            return await call_next(request)  # type: ignore[no-any-return]
        now = time.time()
        auth = request.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return _error(401, "Requires authentication")
        if _needs_jwt(relative):
            problem = (
                "this simulated GitHub has no App"
                if sim_app is None
                else (sim_app.check_jwt(given, now))
            )
            if problem is not None:
                return _error(401, problem)
        elif not (
            secrets.compare_digest(given, token)
            or (sim_app is not None and sim_app.token_valid(given, now))
        ):
            return _error(401, "Bad credentials")
        injected: Faults = app.state.faults
        if injected.delay_seconds:
            await asyncio.sleep(injected.delay_seconds)
        if now < injected.until:
            return _error(503, "Service Unavailable (simulated outage)")
        if injected.server_errors > 0:
            injected.server_errors -= 1
            return _error(502, "Server Error")
        if injected.rate_limits > 0:
            injected.rate_limits -= 1
            headers = budget.headers(now) | {"x-ratelimit-remaining": "0"}
            if injected.retry_after is not None:
                headers["retry-after"] = str(injected.retry_after)
            return _error(
                injected.rate_limit_status,
                "API rate limit exceeded for installation.",
                headers=headers,
            )
        if injected.secondary_rate_limits > 0:
            injected.secondary_rate_limits -= 1
            secondary = {"message": SECONDARY_MESSAGE, "documentation_url": SECONDARY_DOCS}
            if injected.secondary_rate_limit_status == 429:
                return JSONResponse(secondary, status_code=429)
            return JSONResponse(secondary, status_code=403, headers=budget.headers(now))
        if injected.permission_denied > 0:
            injected.permission_denied -= 1
            return _error(403, NO_ACCESS, headers=budget.headers(now))
        moved = route_repository(request, relative)
        if moved is not None:
            for key, value in budget.headers(now).items():
                moved.headers[key] = value
            return moved
        streamed = await call_next(request)
        body = b"".join([chunk async for chunk in streamed.body_iterator])
        headers = {k: v for k, v in streamed.headers.items() if k != "content-length"}
        response = Response(body, status_code=streamed.status_code, headers=headers)
        if request.method == "GET" and response.status_code == 200:
            etag = f'W/"{hashlib.sha256(body).hexdigest()[:40]}"'
            if request.headers.get("if-none-match") == etag:
                response = Response(status_code=304, headers={"etag": etag})
            else:
                response.headers["etag"] = etag
        if response.status_code != 304:
            budget.used += 1
        for key, value in budget.headers(now).items():
            response.headers[key] = value
        response.headers["x-github-api-version-selected"] = "2022-11-28"
        return response

    actions_routes(app, sim)
    rerun_routes(app, sim)
    org_routes(app, sim, sim_app=sim_app)
    broker_routes(app, sim)
    control_routes(app, sim)
    return app
