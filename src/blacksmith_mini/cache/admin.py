"""Operators' view of the cache: list and delete entries (like ``gh cache list / delete``),
pending uploads, metrics and an on-demand scrub, under ``/api/cache``.

The routes take an ``authorize`` dependency: the standalone app checks its own admin token,
the control plane passes its admin check. Entries are shaped like GitHub's
``GET /repos/{owner}/{repo}/actions/caches`` items (``id``, ``ref``, ``key``, ``version``,
``size_in_bytes``, ``created_at``, ``last_accessed_at``) plus ``repository`` and ``sha256``.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from blacksmith_mini.cache.index import Row
from blacksmith_mini.cache.service import CacheService

PREFIX = "/api/cache"


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()


def describe(row: Row) -> dict[str, object]:
    return {
        "id": row.id,
        "repository": row.repository,
        "ref": row.scope,
        "key": row.key,
        "version": row.version,
        "size_in_bytes": row.size,
        "sha256": row.sha256,
        "created_at": _iso(row.created_at),
        "last_accessed_at": _iso(row.last_used_at),
    }


def router(service: CacheService, *, authorize: Callable[[Request], Awaitable[None]]) -> APIRouter:
    api = APIRouter(prefix=PREFIX, tags=["cache"], dependencies=[Depends(authorize)])
    store = service.store

    @api.get("/entries", operation_id="cache-list")
    async def list_entries(
        repository: str | None = None, key: str | None = None, ref: str | None = None
    ) -> dict[str, object]:
        rows = store.entries(repository=repository, key=key, scope=ref)
        return {"total_count": len(rows), "entries": [describe(row) for row in rows]}

    @api.delete("/entries/{ident}", status_code=204, operation_id="cache-delete")
    async def delete_entry(ident: int) -> Response:
        if store.remove(ident) is None:
            raise HTTPException(404, "no such cache entry")
        return Response(status_code=204)

    @api.delete("/entries", operation_id="cache-delete-by-key")
    async def delete_by_key(repository: str, key: str, ref: str | None = None) -> dict[str, object]:
        removed = [
            row
            for row in store.entries(repository=repository, key=key, scope=ref)
            if store.remove(row.id) is not None
        ]
        return {"total_count": len(removed), "entries": [describe(row) for row in removed]}

    @api.get("/uploads", operation_id="cache-uploads")
    async def uploads() -> dict[str, object]:
        found = [
            {
                "id": row.id,
                "repository": row.repository,
                "ref": row.scope,
                "key": row.key,
                "version": row.version,
                "received_bytes": received,
                "sealed": row.layout is not None,
                "reserved_at": _iso(row.reserved_at),
            }
            for row, received in store.uploads()
        ]
        return {"total_count": len(found), "uploads": found}

    @api.get("/metrics", operation_id="cache-metrics")
    async def metrics() -> dict[str, object]:
        usage = store.usage()
        return {
            "repositories": service.metrics.snapshot(),
            "usage_bytes": usage,
            "host_bytes": sum(usage.values()),
            "limits": {
                "repository_bytes": store.limits.repository_bytes,
                "host_bytes": store.limits.host_bytes,
            },
        }

    @api.post("/scrub", operation_id="cache-scrub")
    async def scrub() -> dict[str, object]:
        report = await service.scrub()
        return {
            "checked": report.checked,
            "corrupt": [describe(row) for row in report.corrupt],
            "expired_uploads": list(report.expired),
        }

    return api
