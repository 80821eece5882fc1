"""The simulated GitHub's HTTP face: GitHub's REST routes, plus the broker simulated runners use.

REST behaviour kept from GitHub: ``Authorization`` required (401 "Bad credentials"), rate-limit
headers on every answer, ``ETag`` with ``If-None-Match`` -> 304 (not charged), ``link``
pagination with ``per_page`` capped at 100, 409 on a duplicate runner name, 422 on deleting a
busy runner or a malformed JIT request, 404 on unknown ids. ``faults`` injects 5xx and
rate-limit answers for tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import secrets
import time
from typing import Any

import jwt
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.github import parse
from blacksmith_mini.simulator import formats, state, webhook_sender

DOCS = "https://docs.github.com/rest"


@dataclasses.dataclass
class Faults:
    """Injected failures: the next N REST calls answer 5xx or a rate limit."""

    server_errors: int = 0
    rate_limits: int = 0
    rate_limit_status: int = 403
    retry_after: int | None = 60
    delay_seconds: float = 0.0  # every REST answer waits this long (time-outs)
    until: float = 0.0  # while now < until, every REST call answers 5xx (an outage)


@dataclasses.dataclass
class SimApp:
    """A simulated GitHub App: its id, public key, one installation, and the tokens it issued."""

    app_id: str
    public_key_pem: str
    installation_id: int = 1
    token_ttl_seconds: float = 3600.0
    tokens: dict[str, float] = dataclasses.field(default_factory=dict)  # token -> expires at
    issued: int = 0

    def check_jwt(self, token: str, now: float) -> str | None:
        """None when the JWT is acceptable, else GitHub's complaint."""
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["RS256"],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "require": ["iat", "exp", "iss"],
                },
            )
        except jwt.PyJWTError as exc:
            return f"A JSON web token could not be decoded ({exc})"
        if str(claims["iss"]) != self.app_id:
            return "'Issuer' claim ('iss') must be the App's id or client id"
        if claims["iat"] > now + 60:
            return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
        if claims["exp"] <= now:
            return "'Expiration time' claim ('exp') is in the past"
        if claims["exp"] - claims["iat"] > 600:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def issue(self, now: float) -> tuple[str, float]:
        self.issued += 1
        token = f"ghs_{self.app_id}_{secrets.token_urlsafe(24)}"
        self.tokens[token] = now + self.token_ttl_seconds
        return token, self.tokens[token]

    def token_valid(self, token: str, now: float) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and now < expires


@dataclasses.dataclass
class Budget:
    limit: int = 5000
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


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"message": message, "documentation_url": DOCS, "status": str(status)},
        status_code=status,
        headers=headers,
    )


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

    def page(request: Request, items: list[Any], key: str) -> Response:
        try:
            per_page = min(100, max(1, int(request.query_params.get("per_page", "30"))))
            number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            return _error(422, "Invalid request.\n\nper_page and page must be integers.")
        pages = max(1, math.ceil(len(items) / per_page))
        chunk = items[(number - 1) * per_page : number * per_page]
        headers = {}
        links = []
        base = request.url.remove_query_params("page")
        if number < pages:
            links.append(f'<{base.include_query_params(page=number + 1)}>; rel="next"')
            links.append(f'<{base.include_query_params(page=pages)}>; rel="last"')
        if number > 1:
            links.append(f'<{base.include_query_params(page=number - 1)}>; rel="prev"')
            links.append(f'<{base.include_query_params(page=1)}>; rel="first"')
        if links:
            headers["link"] = ", ".join(links)
        return JSONResponse({"total_count": len(items), key: chunk}, headers=headers)

    def known_repo(owner: str, repo: str) -> str | None:
        name = f"{owner}/{repo}".lower()
        return name if name in sim.repositories else None

    @app.get("/repos/{owner}/{repo}/actions/runs")
    async def list_runs(owner: str, repo: str, request: Request) -> Response:
        name = known_repo(owner, repo)
        if name is None:
            return _error(404, "Not Found")
        wanted = request.query_params.get("status")
        runs = [
            formats.run(run)
            for run in sorted(sim.runs.values(), key=lambda r: r.id, reverse=True)
            if run.repository == name and (wanted is None or run.status == wanted)
        ]
        return page(request, runs, "workflow_runs")

    @app.get("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs")
    async def list_jobs(owner: str, repo: str, run_id: int, request: Request) -> Response:
        name = known_repo(owner, repo)
        run = sim.runs.get(run_id)
        if name is None or run is None or run.repository != name:
            return _error(404, "Not Found")
        return page(request, [formats.job(sim.jobs[i]) for i in run.job_ids], "jobs")

    @app.get("/repos/{owner}/{repo}/actions/jobs/{job_id}")
    async def get_job(owner: str, repo: str, job_id: int) -> Response:
        job = sim.jobs.get(job_id)
        if job is None or job.repository != known_repo(owner, repo):
            return _error(404, "Not Found")
        return JSONResponse(formats.job(job))

    def scope_of(owner: str, repo: str | None) -> str | None:
        if repo is None:
            return f"org:{owner}"
        return known_repo(owner, repo)

    async def list_runners(scope: str | None, request: Request) -> Response:
        if scope is None:
            return _error(404, "Not Found")
        runners = sim.runners_in(scope)
        name = request.query_params.get("name")
        if name is not None:
            runners = [runner for runner in runners if runner.name == name]
        return page(request, [formats.runner(r) for r in runners], "runners")

    async def generate_jitconfig(scope: str | None, request: Request) -> Response:
        if scope is None:
            return _error(404, "Not Found")
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            return _error(400, "Problems parsing JSON")
        problems = _jit_problems(body)
        if problems:
            return _error(422, f"Invalid request.\n\n{problems}")
        try:
            runner, encoded = sim.register(
                scope=scope,
                name=body["name"],
                labels=body["labels"],
                group_id=body["runner_group_id"],
            )
        except state.Conflict as exc:
            return _error(409, str(exc))
        except state.Missing as exc:
            return _error(404, str(exc))
        return JSONResponse(
            {"runner": formats.runner(runner), "encoded_jit_config": encoded}, status_code=201
        )

    async def delete_runner(scope: str | None, runner_id: int) -> Response:
        if scope is None:
            return _error(404, "Not Found")
        try:
            sim.delete_runner(scope, runner_id)
        except state.Missing:
            return _error(404, "Not Found")
        except state.Busy as exc:
            return _error(422, f"Bad request - {exc}")
        return Response(status_code=204)

    @app.get("/repos/{owner}/{repo}/actions/runners")
    async def repo_runners(owner: str, repo: str, request: Request) -> Response:
        return await list_runners(scope_of(owner, repo), request)

    @app.get("/orgs/{org}/actions/runners")
    async def org_runners(org: str, request: Request) -> Response:
        return await list_runners(scope_of(org, None), request)

    @app.post("/repos/{owner}/{repo}/actions/runners/generate-jitconfig")
    async def repo_jit(owner: str, repo: str, request: Request) -> Response:
        return await generate_jitconfig(scope_of(owner, repo), request)

    @app.post("/orgs/{org}/actions/runners/generate-jitconfig")
    async def org_jit(org: str, request: Request) -> Response:
        return await generate_jitconfig(scope_of(org, None), request)

    @app.delete("/repos/{owner}/{repo}/actions/runners/{runner_id}")
    async def repo_delete(owner: str, repo: str, runner_id: int) -> Response:
        return await delete_runner(scope_of(owner, repo), runner_id)

    @app.delete("/orgs/{org}/actions/runners/{runner_id}")
    async def org_delete(org: str, runner_id: int) -> Response:
        return await delete_runner(scope_of(org, None), runner_id)

    @app.get("/rate_limit")
    async def rate_limit() -> Response:
        headers = budget.headers(time.time())
        core = {
            "limit": int(headers["x-ratelimit-limit"]),
            "remaining": int(headers["x-ratelimit-remaining"]),
            "reset": int(headers["x-ratelimit-reset"]),
            "used": int(headers["x-ratelimit-used"]),
        }
        return JSONResponse({"resources": {"core": core}, "rate": core})

    _org_routes(app, sim, sim_app)
    _broker_routes(app, sim)
    _fault_routes(app)
    return app


def _org_routes(app: FastAPI, sim: state.SimState, sim_app: SimApp | None) -> None:
    """Installations, organizations, runner groups and the App's webhook delivery log."""

    def installation() -> dict[str, Any]:
        assert sim_app is not None
        return {
            "id": sim_app.installation_id,
            "app_id": int(sim_app.app_id),
            "target_type": "Organization",
            "permissions": {
                "administration": "write",
                "organization_self_hosted_runners": "write",
                "actions": "read",
                "metadata": "read",
            },
        }

    @app.get("/app")
    async def get_app() -> Response:
        assert sim_app is not None
        return JSONResponse(
            {
                "id": int(sim_app.app_id),
                "slug": "blacksmith-mini-sim",
                "name": "Blacksmith Mini (simulated)",
            }
        )

    @app.post("/app/installations/{installation_id}/access_tokens")
    async def access_token(installation_id: int) -> Response:
        assert sim_app is not None
        if installation_id != sim_app.installation_id:
            return _error(404, "Not Found")
        token, expires = sim_app.issue(time.time())
        return JSONResponse(
            {
                "token": token,
                "expires_at": parse.iso(expires),
                "permissions": installation()["permissions"],
                "repository_selection": "all",
            },
            status_code=201,
        )

    @app.get("/repos/{owner}/{repo}/installation")
    async def repo_installation(owner: str, repo: str) -> Response:
        if f"{owner}/{repo}".lower() not in sim.repositories:
            return _error(404, "Not Found")
        return JSONResponse(installation())

    @app.get("/orgs/{org}/installation")
    async def org_installation(org: str) -> Response:
        if not any(r.startswith(org.lower() + "/") for r in sim.repositories):
            return _error(404, "Not Found")
        return JSONResponse(installation())

    def repos_of(org: str | None) -> list[dict[str, Any]]:
        return [
            formats.repository(name)
            for name in sim.repositories
            if org is None or name.startswith(org.lower() + "/")
        ]

    @app.get("/installation/repositories")
    async def installation_repositories() -> Response:
        repos = repos_of(None)
        return JSONResponse({"total_count": len(repos), "repositories": repos})

    @app.get("/orgs/{org}/repos")
    async def org_repos(org: str) -> Response:
        return JSONResponse(repos_of(org))

    @app.get("/repos/{owner}/{repo}")
    async def get_repo(owner: str, repo: str) -> Response:
        name = f"{owner}/{repo}".lower()
        if name not in sim.repositories:
            return _error(404, "Not Found")
        return JSONResponse(formats.repository(name))

    @app.get("/orgs/{org}/actions/runner-groups")
    async def runner_groups(org: str) -> Response:
        if not any(r.startswith(org.lower() + "/") for r in sim.repositories):
            return _error(404, "Not Found")
        groups = [
            {
                "id": gid,
                "name": name,
                "visibility": "all",
                "default": gid == 1,
                "runners_url": "",
                "inherited": False,
                "allows_public_repositories": False,
            }
            for gid, name in sorted(sim.group_ids.items())
        ]
        return JSONResponse({"total_count": len(groups), "runner_groups": groups})

    @app.get("/app/hook/deliveries")
    async def deliveries(request: Request) -> Response:
        sender: webhook_sender.WebhookSender | None = app.state.sender
        log = [] if sender is None else sender.log
        per_page = min(100, int(request.query_params.get("per_page", "30")))
        cursor = int(request.query_params.get("cursor", "0") or 0)
        newest_first = sorted(log, key=lambda d: d.id, reverse=True)
        if cursor:
            newest_first = [d for d in newest_first if d.id < cursor]
        chunk = newest_first[:per_page]
        headers = {}
        if len(newest_first) > per_page:
            following = request.url.include_query_params(cursor=chunk[-1].id)
            headers["link"] = f'<{following}>; rel="next"'
        return JSONResponse([d.as_github() for d in chunk], headers=headers)

    @app.post("/app/hook/deliveries/{delivery_id}/attempts")
    async def redeliver(delivery_id: int) -> Response:
        sender: webhook_sender.WebhookSender | None = app.state.sender
        if sender is None or not sender.redeliver(delivery_id):
            return _error(404, "Not Found")
        return JSONResponse({}, status_code=202)


def _jit_problems(body: Any) -> str:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    problems = []
    if not isinstance(body.get("name"), str) or not body["name"]:
        problems.append("`name` is a required string")
    if not isinstance(body.get("runner_group_id"), int):
        problems.append("`runner_group_id` is a required integer")
    labels = body.get("labels")
    if not isinstance(labels, list) or not 1 <= len(labels) <= 100:
        problems.append("`labels` must be an array of 1 to 100 strings")
    elif not all(isinstance(label, str) and label for label in labels):
        problems.append("`labels` must contain non-empty strings")
    unknown = set(body) - {"name", "runner_group_id", "labels", "work_folder"}
    if unknown:
        problems.append(f"unexpected fields: {sorted(unknown)}")
    return "; ".join(problems)


def _fault_routes(app: FastAPI) -> None:
    """``POST /faults`` (under ``/_sim``): change the injected faults; ``GET`` shows them."""

    @app.get("/faults")
    async def show_faults() -> Response:
        return JSONResponse(dataclasses.asdict(app.state.faults))

    @app.post("/faults")
    async def set_faults(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            current: Faults = app.state.faults
            changes = {k: v for k, v in body.items() if k in dataclasses.asdict(current)}
            if "outage_seconds" in body:
                changes["until"] = time.time() + float(body["outage_seconds"])
            app.state.faults = dataclasses.replace(current, **changes)
        except (ValueError, TypeError, AttributeError) as exc:
            return _error(422, f"bad faults: {exc}")
        return JSONResponse(dataclasses.asdict(app.state.faults))


def _broker_routes(app: FastAPI, sim: state.SimState) -> None:
    """The simulated Actions service the runner process talks to (not a GitHub REST API)."""

    def runner_of(request: Request) -> state.SimRunner:
        runner_id = int(request.headers.get("x-runner-id", "0"))
        return sim.authenticate(runner_id, request.headers.get("x-runner-secret", ""))

    @app.post("/broker/connect")
    async def connect(request: Request) -> Response:
        try:
            sim.connect(runner_of(request))
        except state.Missing as exc:
            return _error(401, str(exc))
        return JSONResponse({"ok": True})

    @app.get("/broker/next")
    async def next_job(request: Request, wait: float = 10.0) -> Response:
        deadline = time.monotonic() + min(max(wait, 0.0), 30.0)
        while True:
            try:
                runner = runner_of(request)
            except state.Missing as exc:
                return _error(401, str(exc))
            job = sim.next_job(runner)
            if job is not None:
                return JSONResponse(
                    {
                        "job_id": job.id,
                        "name": job.name,
                        "duration": job.duration,
                        "conclusion": job.planned_conclusion,
                    }
                )
            if runner.ran_job or time.monotonic() >= deadline:
                return Response(status_code=204)
            await asyncio.sleep(0.05)

    @app.post("/broker/jobs/{job_id}/complete")
    async def complete(job_id: int, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            sim.complete(runner_of(request), job_id, str(body["conclusion"]))
        except (state.Missing, KeyError, json.JSONDecodeError) as exc:
            return _error(404, str(exc))
        return JSONResponse({"ok": True})

    @app.post("/broker/disconnect")
    async def disconnect(request: Request) -> Response:
        try:
            sim.disconnect(runner_of(request))
        except state.Missing:
            return Response(status_code=204)
        return JSONResponse({"ok": True})
