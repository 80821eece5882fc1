"""``GET /api/status`` (the seed's payload) and ``GET /api/health``.

The status JSON is rendered once per published view and kept with a gzip copy, per app, so a
hundred dashboards polling cost one render and a memory copy each (588 KB of JSON for 1,000
VMs travels as about 40 KB).
"""

from __future__ import annotations

import dataclasses
import gzip
import threading
import time

from fastapi import APIRouter, Request, Response

from blacksmith_mini.api import convert, schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.runtime import Runtime

router = APIRouter(tags=["status"])


@dataclasses.dataclass(frozen=True)
class Rendered:
    version: int
    content_version: int
    plain: bytes
    compressed: bytes


class RenderedStatus:
    """The JSON of the latest view, rendered once and shared by every reader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest = Rendered(-1, -1, b"", b"")

    def get(self, runtime: Runtime) -> Rendered:
        view = runtime.loop.view
        latest = self._latest
        if latest.version == view.version:
            return latest
        stuck = runtime.loop.is_stuck(view.at)
        plain = convert.status(view, stuck=stuck).model_dump_json().encode()
        rendered = Rendered(
            view.version, view.content_version, plain, gzip.compress(plain, compresslevel=5)
        )
        with self._lock:
            if rendered.version > self._latest.version:
                self._latest = rendered
        return rendered


def rendered_status(request: Request) -> RenderedStatus:
    """The app's own cache (one per app: view versions of different apps are unrelated)."""
    cache: RenderedStatus | None = getattr(request.app.state, "rendered_status", None)
    if cache is None:
        cache = request.app.state.rendered_status = RenderedStatus()
    return cache


@router.get("/api/status", response_model=schemas.StatusResponse, responses=schemas.READ_ERRORS)
async def get_status(runtime: RuntimeDep, request: Request) -> Response:
    """The whole system at a glance; the seed's fields plus pools, health and unmatched jobs."""
    rendered = rendered_status(request).get(runtime)
    headers = {"vary": "accept-encoding", "cache-control": "no-store"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(rendered.compressed, media_type="application/json", headers=headers)
    return Response(rendered.plain, media_type="application/json", headers=headers)


@router.get(
    "/api/health",
    response_model=schemas.HealthResponse,
    responses={503: {"model": schemas.HealthResponse, "description": "the loop is stuck"}},
)
async def get_health(runtime: RuntimeDep, response: Response) -> schemas.HealthResponse:
    """200 while the loop ticks; 503 when it has not ticked for a while (stuck)."""
    view = runtime.loop.view
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
