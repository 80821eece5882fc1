"""Controls of the simulated GitHub, under ``/_sim/faults`` (admin token in the server).

- ``GET /faults``: the injected faults, ``lag_seconds``, ``assign_seconds`` and the counters
  (``killed_busy_runners``, ``requeued_jobs``); ``POST /faults`` changes any of the first
  three groups (``outage_seconds`` starts an outage).
- ``POST /faults/runs``: queue a run of several jobs, optionally held (``run_status``).
- ``POST /faults/repositories``: rename/transfer (``rename_to``), remove, forbid or change
  the visibility of a repository.
- ``POST /faults/runner-groups``: add an organization runner group (or change one by ``id``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.simulator import state
from blacksmith_mini.simulator.sim_http import error

SIM_SETTINGS = ("lag_seconds", "assign_seconds")


def control_routes(app: FastAPI, sim: state.SimState) -> None:
    def shown() -> dict[str, Any]:
        settings = {name: getattr(sim, name) for name in SIM_SETTINGS}
        return dataclasses.asdict(app.state.faults) | settings | sim.counters

    async def body_of(request: Request) -> dict[str, Any]:
        body = json.loads(await request.body() or b"{}")
        if not isinstance(body, dict):
            raise TypeError("the body must be a JSON object")
        return body

    @app.get("/faults")
    async def show_faults() -> Response:
        return JSONResponse(shown())

    @app.post("/faults")
    async def set_faults(request: Request) -> Response:
        try:
            body = await body_of(request)
            current = app.state.faults
            changes = {k: v for k, v in body.items() if k in dataclasses.asdict(current)}
            if "outage_seconds" in body:
                changes["until"] = time.time() + float(body["outage_seconds"])
            app.state.faults = dataclasses.replace(current, **changes)
            for name in SIM_SETTINGS:
                if name in body:
                    setattr(sim, name, max(0.0, float(body[name])))
        except (ValueError, TypeError, AttributeError) as exc:
            return error(422, f"bad faults: {exc}")
        return JSONResponse(shown())

    @app.post("/faults/runs")
    async def queue_run(request: Request) -> Response:
        try:
            body = await body_of(request)
            jobs = [
                state.JobSpec(
                    list(job["labels"]),
                    float(job.get("duration", 1.0)),
                    str(job.get("conclusion", "success")),
                    str(job.get("name", "build")),
                )
                for job in body["jobs"]
            ]
            run = sim.queue_run(
                repository=str(body.get("repository") or sim.repositories[0]),
                jobs=jobs,
                workflow_name=str(body.get("workflow_name", "CI")),
                run_status=str(body.get("run_status", "queued")),
            )
        except state.Missing as exc:
            return error(404, str(exc))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            return error(422, f"bad run: {exc}")
        return JSONResponse(
            {"run_id": run.id, "status": run.status, "job_ids": run.job_ids}, status_code=201
        )

    @app.post("/faults/repositories")
    async def change_repository(request: Request) -> Response:
        try:
            body = await body_of(request)
            name = str(body["repository"])
            if body.get("rename_to"):
                name = sim.rename_repository(name, str(body["rename_to"])).full_name
            flags = {k: bool(body[k]) for k in ("private", "forbidden", "removed") if k in body}
            repo = sim.update_repository(name, **flags)
        except state.Missing as exc:
            return error(404, str(exc))
        except state.Conflict as exc:
            return error(409, str(exc))
        except (ValueError, TypeError, KeyError) as exc:
            return error(422, f"bad repository change: {exc}")
        return JSONResponse(dataclasses.asdict(repo))

    @app.post("/faults/runner-groups")
    async def change_group(request: Request) -> Response:
        try:
            body = await body_of(request)
            if "id" in body:
                group = sim.update_group(
                    int(body["id"]),
                    visibility=body.get("visibility"),
                    allows_public_repositories=body.get("allows_public_repositories"),
                    repositories=body.get("repositories"),
                )
            else:
                group = sim.add_group(
                    str(body["name"]),
                    visibility=str(body.get("visibility", "all")),
                    allows_public_repositories=bool(body.get("allows_public_repositories")),
                    repositories=[str(r) for r in body.get("repositories", [])],
                )
        except state.Missing as exc:
            return error(404, str(exc))
        except (ValueError, TypeError, KeyError) as exc:
            return error(422, f"bad runner group: {exc}")
        return JSONResponse(dataclasses.asdict(group))
