"""The simulated Actions service the runner process talks to (not a GitHub REST API).

It reads and changes the live state: a runner sees its job as soon as it starts, whatever
lag the REST answers have.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.simulator import state
from blacksmith_mini.simulator.sim_http import error


def broker_routes(app: FastAPI, sim: state.SimState) -> None:
    def runner_of(request: Request) -> state.SimRunner:
        runner_id = int(request.headers.get("x-runner-id", "0"))
        return sim.authenticate(runner_id, request.headers.get("x-runner-secret", ""))

    @app.post("/broker/connect")
    async def connect(request: Request) -> Response:
        try:
            sim.connect(runner_of(request))
        except state.Missing as exc:
            return error(401, str(exc))
        return JSONResponse({"ok": True})

    @app.get("/broker/next")
    async def next_job(request: Request, wait: float = 10.0) -> Response:
        deadline = time.monotonic() + min(max(wait, 0.0), 30.0)
        while True:
            try:
                runner = runner_of(request)
            except state.Missing as exc:
                return error(401, str(exc))
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
            done = runner.ran_job and runner.job_id is None  # not while only assigned
            if done or time.monotonic() >= deadline:
                return Response(status_code=204)
            await asyncio.sleep(0.05)

    @app.post("/broker/jobs/{job_id}/complete")
    async def complete(job_id: int, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            sim.complete(runner_of(request), job_id, str(body["conclusion"]))
        except (state.Missing, KeyError, json.JSONDecodeError) as exc:
            return error(404, str(exc))
        return JSONResponse({"ok": True})

    @app.post("/broker/disconnect")
    async def disconnect(request: Request) -> Response:
        try:
            sim.disconnect(runner_of(request))
        except state.Missing:
            return Response(status_code=204)
        return JSONResponse({"ok": True})
