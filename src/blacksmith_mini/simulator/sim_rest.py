"""The simulated GitHub's Actions REST routes: runs, jobs, runners, JIT configs, rate limit.

Every answer shows the state as it was ``sim.lag_seconds`` ago (``lag``); a renamed,
removed or forbidden repository is handled before these routes (``github_api``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.simulator import formats, state
from blacksmith_mini.simulator.sim_http import error, page


def actions_routes(app: FastAPI, sim: state.SimState) -> None:
    def known_repo(owner: str, repo: str) -> state.SimRepository | None:
        return sim.repository(f"{owner}/{repo}")

    def group_name(job: state.SimJob) -> str | None:
        group = sim.groups.get(job.runner_group_id or 0)
        return group.name if group else None

    def job_json(job: state.SimJob) -> dict[str, Any]:
        shown = sim.rest_job(job)
        return formats.job(shown, group_name(shown))

    @app.get("/repos/{owner}/{repo}/actions/runs")
    async def list_runs(owner: str, repo: str, request: Request) -> Response:
        found = known_repo(owner, repo)
        if found is None:
            return error(404, "Not Found")
        wanted = request.query_params.get("status")
        shown = (sim.rest_run(run) for run in sorted(sim.runs.values(), key=lambda r: -r.id))
        runs = [
            formats.run(run, found)
            for run in shown
            if run.repository == found.full_name and wanted in (None, run.status)
        ]
        return page(request, runs, key="workflow_runs")

    @app.get("/repos/{owner}/{repo}/actions/runs/{run_id}")
    async def get_run(owner: str, repo: str, run_id: int) -> Response:
        found = known_repo(owner, repo)
        run = sim.runs.get(run_id)
        if found is None or run is None or run.repository != found.full_name:
            return error(404, "Not Found")
        return JSONResponse(formats.run(sim.rest_run(run), found))

    @app.get("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs")
    async def list_jobs(owner: str, repo: str, run_id: int, request: Request) -> Response:
        found = known_repo(owner, repo)
        run = sim.runs.get(run_id)
        if found is None or run is None or run.repository != found.full_name:
            return error(404, "Not Found")
        return page(request, [job_json(sim.jobs[i]) for i in run.job_ids], key="jobs")

    @app.get("/repos/{owner}/{repo}/actions/jobs/{job_id}")
    async def get_job(owner: str, repo: str, job_id: int) -> Response:
        found, job = known_repo(owner, repo), sim.jobs.get(job_id)
        if job is None or found is None or job.repository != found.full_name:
            return error(404, "Not Found")
        return JSONResponse(job_json(job))

    def scope_of(owner: str, repo: str | None) -> str | None:
        if repo is None:
            return f"org:{owner}"
        found = known_repo(owner, repo)
        return found.full_name if found else None

    async def list_runners(scope: str | None, request: Request) -> Response:
        if scope is None:
            return error(404, "Not Found")
        runners = sim.runners_in(scope)
        name = request.query_params.get("name")
        if name is not None:
            runners = [runner for runner in runners if runner.name == name]
        return page(request, [formats.runner(sim.rest_runner(r)) for r in runners], key="runners")

    async def generate_jitconfig(scope: str | None, request: Request) -> Response:
        if scope is None:
            return error(404, "Not Found")
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError:
            return error(400, "Problems parsing JSON")
        problems = _jit_problems(body)
        if problems:
            return error(422, f"Invalid request.\n\n{problems}")
        try:
            runner, encoded = sim.register(
                scope=scope,
                name=body["name"],
                labels=body["labels"],
                group_id=body["runner_group_id"],
            )
        except state.Conflict as exc:
            return error(409, str(exc))
        except state.Missing as exc:
            return error(404, str(exc))
        return JSONResponse(
            {"runner": formats.runner(runner), "encoded_jit_config": encoded}, status_code=201
        )

    async def delete_runner(scope: str | None, runner_id: int) -> Response:
        if scope is None:
            return error(404, "Not Found")
        try:
            sim.delete_runner(scope, runner_id)
        except state.Missing:
            return error(404, "Not Found")
        except state.Busy as exc:
            return error(422, f"Bad request - {exc}")
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
        headers = app.state.budget.headers(time.time())
        core = {
            "limit": int(headers["x-ratelimit-limit"]),
            "remaining": int(headers["x-ratelimit-remaining"]),
            "reset": int(headers["x-ratelimit-reset"]),
            "used": int(headers["x-ratelimit-used"]),
        }
        return JSONResponse({"resources": {"core": core}, "rate": core})


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
