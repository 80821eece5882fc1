"""The cache as an ASGI app: the VM-facing routers, and the admin routes behind a token.

VM-facing (no access control but the per-VM token and the URL signatures; bodies unbounded
because they stream to disk): ``/twirp/...`` (v2; must be at the host's root),
``/_apis/artifactcache/...`` (v1), ``/_blob/...`` (the Azure subset), ``/_health``.
Admin: ``/api/cache/...`` with ``Authorization: Bearer <admin token>``.

The control plane can instead include ``vm_routers(service)`` in an app on the VM-facing
address and ``admin.router(get_service, authorize=...)`` in its own API.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from fastapi import APIRouter, FastAPI, HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from blacksmith_mini.cache import admin, blob, twirp, v1
from blacksmith_mini.cache.service import CacheService


def vm_routers(service: CacheService) -> list[APIRouter]:
    health = APIRouter(include_in_schema=False)

    @health.get("/_health")
    async def healthy() -> JSONResponse:
        return JSONResponse({"ok": True})

    return [twirp.router(service), v1.router(service), blob.router(service), health]


def bearer_check(token: str) -> Callable[[Request], Awaitable[None]]:
    """An ``authorize`` dependency accepting exactly ``Authorization: Bearer <token>``."""
    expected = f"Bearer {token}".encode()

    async def authorize(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not token or not hmac.compare_digest(given, expected):
            raise HTTPException(401, "admin token required")

    return authorize


def create_vm_app(service: CacheService) -> FastAPI:
    """Only what VMs call (the control plane serves the admin routes in its own API)."""
    app = FastAPI(title="Blacksmith Mini cache", docs_url=None, redoc_url=None, openapi_url=None)
    for found in vm_routers(service):
        app.include_router(found)
    return app


def create_cache_app(
    service: CacheService, *, admin_token: str, scrub_interval_seconds: float | None = None
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as group:
            if scrub_interval_seconds:
                group.start_soon(service.run_scrubber, scrub_interval_seconds)
            try:
                yield
            finally:
                group.cancel_scope.cancel()
        service.close()

    app = FastAPI(title="Blacksmith Mini cache", lifespan=lifespan, docs_url=None, redoc_url=None)
    for found in vm_routers(service):
        app.include_router(found)
    app.include_router(admin.router(lambda: service, authorize=bearer_check(admin_token)))
    return app
