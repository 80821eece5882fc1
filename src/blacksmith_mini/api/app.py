"""The FastAPI app factory: routers, CORS, access tokens, JSON 404s under /api, the
simulated GitHub under /_sim (simulate mode only) and the exported dashboard at /.

The OpenAPI document tells the truth (``tests/api/test_schemathesis.py`` runs every
schemathesis check on it): a known /api path asked with a method it does not serve answers
405 with ``Allow``, an unknown one a JSON 404; a body that is not JSON answers FastAPI's
documented 422 (``json_invalid``); the access control's 401, 403 and 413 are documented on
every operation they can happen to (``schemas.READ_ERRORS``, ``schemas.CHANGE_ERRORS``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import pathlib
import re
from collections.abc import AsyncIterator

import httpx2
from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api import access, limits, raw_body, report_shortcut
from blacksmith_mini.api.routes import (
    agent,
    agent_cache,
    cache,
    events,
    history,
    hosts,
    jobs,
    operator,
    simulator,
    status,
    usage,
    vms,
    webhooks,
)
from blacksmith_mini.runtime import Runtime

log = logging.getLogger(__name__)
REPO_DASHBOARD = pathlib.Path(__file__).resolve().parents[3] / "frontend" / "out"
WHEEL_DASHBOARD = pathlib.Path(__file__).resolve().parents[1] / "_dashboard"  # hatch_build.py
PUBLIC_PATHS = access.PUBLIC_PATHS
API_CATCH_ALL = "/api/{path:path}"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
BODY_PARSE_ERROR = "There was an error parsing the body"  # FastAPI's words for a non-JSON body


def operation_id(route: APIRoute) -> str:
    """Stable operation ids (``{tag}-{name}``) so generated TypeScript names do not drift."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def dashboard_dir(settings: settings_mod.Settings) -> pathlib.Path | None:
    """The built dashboard: the configured one, else the checkout's, else the wheel's."""
    if settings.server.dashboard_dir is not None:
        candidates = [settings.server.dashboard_dir]
    else:
        candidates = [REPO_DASHBOARD, WHEEL_DASHBOARD]
    return next((found for found in candidates if (found / "index.html").is_file()), None)


def create_app(settings: settings_mod.Settings | None = None) -> FastAPI:
    settings = settings or settings_mod.load(simulate=True)
    runtime = Runtime(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        app.state.runtime = runtime
        # What start-up built lives as long as the process: keep it out of the collector's
        # full passes, which otherwise stall every event-stream client at once (150-300 ms
        # over ~200,000 objects; bench/event_stream_bench.py).
        gc.collect()
        gc.freeze()
        print("Control loop started", flush=True)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Blacksmith Mini",
        version="0.1.0",
        description="Runs every GitHub Actions job in its own fresh microVM.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.runtime_pending = runtime
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.server.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["authorization", "content-type", "last-event-id", "x-blacksmith-actor"],
    )
    read, admin = settings.server.resolved_api_token(), settings.server.resolved_admin_token()
    app.add_middleware(access.AccessControl, read=read, admin=admin)
    app.add_middleware(report_shortcut.ReportShortcut)  # every host's heartbeat, first
    app.add_middleware(limits.BodyLimit)  # outermost: counts the bytes as they arrive
    routers = (
        agent.router,  # first: every host's heartbeat is matched before the rest is tried
        status.router,
        vms.router,
        jobs.router,
        events.router,
        history.router,
        webhooks.router,
        operator.router,
        usage.router,
        agent_cache.router,
        hosts.router,
    )
    for router in routers:
        app.include_router(router)
    app.include_router(cache.router_for(runtime))
    raw_body.document(app, agent.RAW_BODIES)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    if settings.simulate:
        app.include_router(simulator.router)
        assert runtime.simulation is not None
        app.mount("/_sim", runtime.simulation.api)
        runtime.attach_app(httpx2.ASGITransport(app=app))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition of the loop's metrics."""
        body = generate_latest(runtime.loop.metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    method_table: list[tuple[re.Pattern[str], set[str]]] = []  # filled on first use

    @app.api_route(API_CATCH_ALL, methods=ALL_METHODS, include_in_schema=False)
    async def api_not_found(request: Request, path: str) -> Response:
        """A known path asked with another method: 405 (or OPTIONS: 204) with ``Allow``;
        anything else: a JSON 404."""
        if not method_table:
            method_table.extend(_method_table(app))
        target = f"/api/{path}"
        allowed = set().union(*(m for pattern, m in method_table if pattern.fullmatch(target)))
        if not allowed or request.method in allowed:  # e.g. /api/jobs/abc: no such job
            return JSONResponse({"detail": f"no API route /api/{path}"}, status_code=404)
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"allow": allow})
        return JSONResponse(
            {"detail": f"{request.method} is not allowed on /api/{path} (allowed: {allow})"},
            status_code=405,
            headers={"allow": allow},
        )

    built = dashboard_dir(settings)
    if built is not None:
        app.frontend("/", directory=built)
    else:
        _serve_dashboard_when_built(app, settings.server.dashboard_dir or REPO_DASHBOARD)
    return app


NOT_BUILT = """<!doctype html><meta http-equiv="refresh" content="5"><title>Blacksmith Mini</title>
<body style="font-family:sans-serif;background:#0b0d10;color:#d8dee9;padding:2rem">
<h1>Blacksmith Mini</h1><p>The dashboard is not built yet. <code>make run</code> builds it in
the background (log: <code>.blacksmith/web-build.log</code>); this page reloads by itself.
To build it by hand: <code>bash scripts/build-frontend.sh</code>.</p>
<p>The API is live: <a href="/api/status">/api/status</a>, <a href="/docs">/docs</a>.</p>"""


def _serve_dashboard_when_built(app: FastAPI, directory: pathlib.Path) -> None:
    """Serve the exported dashboard from ``directory`` once it exists (it may be built while
    the server runs); until then a page that says so and reloads."""
    root = directory.resolve()

    @app.get("/{path:path}", include_in_schema=False)
    async def dashboard(path: str) -> Response:
        if not (root / "index.html").is_file():
            return HTMLResponse(NOT_BUILT)
        target = (root / path).resolve()
        if root not in (target, *target.parents):
            return JSONResponse({"detail": "not found"}, status_code=404)
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file() and target.with_suffix(".html").is_file():
            target = target.with_suffix(".html")
        if target.is_file():
            return FileResponse(target)
        return FileResponse(root / "404.html", status_code=404)


def _method_table(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    """Each documented path as a pattern, with its methods (so ``Allow`` is the document's)."""
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    table = []
    for template, operations in paths.items():
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        table.append((re.compile(pattern), {method.upper() for method in operations}))
    return table


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI answers a body it cannot decode (not UTF-8, nested too deeply) with an
    undocumented 400; answer it as the documented 422 FastAPI gives malformed JSON."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
        error = {
            "type": "json_invalid",
            "loc": ["body", 0],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": f"the body is not valid JSON: {type(exc.__cause__).__name__}"},
        }
        return JSONResponse({"detail": [error]}, status_code=422)
    return await http_exception_handler(request, exc)
