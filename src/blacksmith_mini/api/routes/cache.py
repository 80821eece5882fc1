"""``/api/cache``: the co-located Actions cache's entries, uploads, metrics and scrub.

The routes are ``cache/admin.py``'s (the standalone service serves the same ones), guarded
here by the API's own access control: reading needs the read token, deleting and scrubbing
the admin token. With the cache off, ``metrics`` answers ``enabled: false`` and every other
route 404, each saying how to turn it on.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.requests import Request

from blacksmith_mini.api import schemas
from blacksmith_mini.cache import admin
from blacksmith_mini.cache.service import CacheService
from blacksmith_mini.runtime import Runtime

CACHE_OFF = (
    "the Actions cache is off: set [cache] enabled = true (BLACKSMITH_CACHE__ENABLED=true); "
    "it is on by default with the firecracker driver"
)
ERRORS = {**schemas.CHANGE_ERRORS, 404: schemas.error_response(CACHE_OFF)}


def router_for(runtime: Runtime) -> APIRouter:
    def get_service() -> CacheService:
        if runtime.cache is None:
            raise HTTPException(404, CACHE_OFF)
        return runtime.cache.service

    async def let_in(request: Request) -> None:
        """The access control middleware already decided."""

    return admin.router(get_service, authorize=let_in, responses=ERRORS)
