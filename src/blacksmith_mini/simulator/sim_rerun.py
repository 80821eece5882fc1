"""The simulated GitHub's job re-run: ``POST /repos/{owner}/{repo}/actions/jobs/{job_id}/rerun``.

GitHub's rules, as far as they are known (``../shared/reference/github.md`` section 1, the
OpenAPI description: 201 with ``{}``, or 403; the refusals' words from public reports):

- A re-run makes a new *attempt* of the run: the job is queued again as a new job (new id,
  ``run_attempt`` + 1, same name, labels and plan) and the old job keeps its conclusion and stays
  readable by id. The run's job list (GitHub's default ``filter=latest``) shows the new job in
  the old one's place; the run goes back to queued or in progress, without a conclusion; a
  ``workflow_job`` ``queued`` event goes out for the new job, as for any queued job.
- While any job of the run is still open: 403 "This workflow is already running" (cli/cli
  #9221 and PR #10774, metabase PR #70916).
- A run created more than 30 days ago: 403 "Unable to retry this workflow run because it was
  created over a month ago" (cli/cli #9989; GitHub's docs: re-runs "up to 30 days after").
- A run re-run 50 times already (GitHub's docs: "a maximum of 50 times"), or a job an earlier
  attempt has already replaced: 403 "This workflow run cannot be retried" (the words seen for
  runs GitHub will not retry, metabase PR #70916; for these two cases UNCONFIRMED).
- An unknown job, or one of another repository: 404.

Not modelled: dependent jobs (``needs:``) re-run with the job, ``filter=all`` listings, and the
run object's own ``run_attempt`` (its jobs carry theirs).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.simulator import state
from blacksmith_mini.simulator.sim_http import error

WINDOW_SECONDS = 30 * 86400.0
MAX_RERUNS = 50
ALREADY_RUNNING = "This workflow is already running"
TOO_OLD = "Unable to retry this workflow run because it was created over a month ago"
CANNOT_RETRY = "This workflow run cannot be retried"
BODY_FIELDS = ("enable_debug_logging", "enable_debugger")


class Refused(Exception):
    """GitHub will not re-run the job: answered with ``status`` and this message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def rerun_job(sim: state.SimState, *, repository: str, job_id: int) -> state.SimJob:
    """Re-run one job of a completed run as GitHub does; the new job. Raises ``state.Missing``
    (404) or ``Refused`` (403)."""
    old = sim.jobs.get(job_id)
    if old is None or old.repository != repository.lower():
        raise state.Missing("Not Found")
    run = sim.runs[old.run_id]
    latest = [sim.jobs[i] for i in run.job_ids]
    if any(job.status != "completed" for job in latest):
        raise Refused(403, ALREADY_RUNNING)
    now = sim.clock()
    if now - run.created_at > WINDOW_SECONDS:
        raise Refused(403, TOO_OLD)
    attempt = max(job.run_attempt for job in latest)
    if job_id not in run.job_ids or attempt > MAX_RERUNS:
        raise Refused(403, CANNOT_RETRY)
    new = state.SimJob(
        id=sim._take("job"),
        run_id=run.id,
        repository=old.repository,
        labels=list(old.labels),
        duration=old.duration,
        planned_conclusion=old.planned_conclusion,
        name=old.name,
        workflow_name=old.workflow_name,
        created_at=now,
        run_attempt=attempt + 1,
    )
    sim.jobs[new.id] = new
    run.job_ids[run.job_ids.index(job_id)] = new.id
    run.conclusion, run.held_status = None, None
    sim._refresh_run(run)
    sim._touch(new)
    sim._emit("queued", new)
    return new


def rerun_routes(app: FastAPI, sim: state.SimState) -> None:
    @app.post("/repos/{owner}/{repo}/actions/jobs/{job_id}/rerun")
    async def rerun(owner: str, repo: str, job_id: int, request: Request) -> Response:
        found = sim.repository(f"{owner}/{repo}")
        if found is None:
            return error(404, "Not Found")
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except json.JSONDecodeError:
            return error(400, "Problems parsing JSON")
        problems = _body_problems(body)
        if problems:
            return error(422, f"Invalid request.\n\n{problems}")
        try:
            rerun_job(sim, repository=found.full_name, job_id=job_id)
        except state.Missing:
            return error(404, "Not Found")
        except Refused as refused:
            return error(refused.status, refused.message)
        return JSONResponse({}, status_code=201)


def _body_problems(body: Any) -> str:
    if body is None:
        return ""
    if not isinstance(body, dict):
        return "The request body must be a JSON object or null."
    wrong = [field for field in BODY_FIELDS if field in body and not isinstance(body[field], bool)]
    return "; ".join(f"`{field}` must be a boolean" for field in wrong)
