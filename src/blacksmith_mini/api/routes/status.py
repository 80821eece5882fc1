"""``GET /api/status`` (the seed's payload, rendered once per published view) and health."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Response

from blacksmith_mini.api import convert, schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.runtime import Runtime

router = APIRouter(tags=["status"])


class RenderedStatus:
    """The JSON of the latest view, rendered once and shared by every reader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = -1
        self._body = b""

    def body(self, runtime: Runtime) -> bytes:
        view = runtime.loop.view
        if view.version != self._version:
            stuck = runtime.loop.is_stuck(view.at)
            body = convert.status(view, stuck=stuck).model_dump_json().encode()
            with self._lock:
                self._version, self._body = view.version, body
        return self._body


RENDERED = RenderedStatus()


@router.get("/api/status", response_model=schemas.StatusResponse)
async def get_status(runtime: RuntimeDep) -> Response:
    """The whole system at a glance; the seed's fields plus pools, health and unmatched jobs."""
    return Response(RENDERED.body(runtime), media_type="application/json")


@router.get(
    "/api/health",
    response_model=schemas.HealthResponse,
    responses={503: {"model": schemas.HealthResponse, "description": "the loop is stuck"}},
)
async def get_health(runtime: RuntimeDep, response: Response) -> schemas.HealthResponse:
    """200 while the loop ticks; 503 when it has not ticked for a while (stuck)."""
    view = runtime.loop.view
    import time

    stuck = runtime.loop.is_stuck(time.time())
    github = convert.github_health(view)
    status = "stuck" if stuck else ("degraded" if github.reachable is False else "ok")
    if stuck:
        response.status_code = 503
    return schemas.HealthResponse(
        status=status,
        loop=convert.loop_health(view, stuck=stuck),
        github=github,
        driver=view.driver,
        database=runtime.store.dialect,
    )
