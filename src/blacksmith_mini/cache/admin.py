"""Operators' view of the cache: list and delete entries (like ``gh cache list / delete``),
pending uploads, metrics and an on-demand scrub, under ``/api/cache``.

The routes take an ``authorize`` dependency: the standalone app checks its own admin token,
the control plane lets its own access control guard them (reads need the read token,
changes the admin token). Entries are shaped like GitHub's
``GET /repos/{owner}/{repo}/actions/caches`` items (``id``, ``ref``, ``key``, ``version``,
``size_in_bytes``, ``created_at``, ``last_accessed_at``) plus ``repository`` and ``sha256``.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from blacksmith_mini.cache.admin_schemas import (
    CacheEntriesResponse,
    CacheEntryOut,
    CacheLimitsOut,
    CacheMetricsResponse,
    CacheRepositoryCounters,
    CacheScrubResponse,
    CacheUploadOut,
    CacheUploadsResponse,
    metrics_off,
)
from blacksmith_mini.cache.index import Row
from blacksmith_mini.cache.service import CacheService

PREFIX = "/api/cache"


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()


def describe(row: Row) -> CacheEntryOut:
    return CacheEntryOut(
        id=row.id,
        repository=row.repository,
        ref=row.scope,
        key=row.key,
        version=row.version,
        size_in_bytes=row.size,
        sha256=row.sha256,
        created_at=_iso(row.created_at),
        last_accessed_at=_iso(row.last_used_at),
    )


def router(
    get_service: Callable[[], CacheService],
    *,
    authorize: Callable[[Request], Awaitable[None]],
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """The routes; ``get_service`` gives the service per request (or raises the HTTP error
    that says why there is none, e.g. the control plane with its cache off); ``responses``
    documents the errors the host app's own middleware may answer."""
    api = APIRouter(
        prefix=PREFIX, tags=["cache"], dependencies=[Depends(authorize)], responses=responses
    )

    @api.get("/entries", operation_id="cache-list")
    async def list_entries(
        repository: str | None = None, key: str | None = None, ref: str | None = None
    ) -> CacheEntriesResponse:
        rows = get_service().store.entries(repository=repository, key=key, scope=ref)
        return CacheEntriesResponse(total_count=len(rows), entries=[describe(r) for r in rows])

    @api.delete(
        "/entries/{ident}",
        status_code=204,
        operation_id="cache-delete",
        responses={404: {"description": "No such committed entry."}},
    )
    async def delete_entry(ident: int) -> Response:
        if get_service().store.remove(ident) is None:
            raise HTTPException(404, "no such cache entry")
        return Response(status_code=204)

    @api.delete("/entries", operation_id="cache-delete-by-key")
    async def delete_by_key(
        repository: str, key: str, ref: str | None = None
    ) -> CacheEntriesResponse:
        store = get_service().store
        removed = [
            row
            for row in store.entries(repository=repository, key=key, scope=ref)
            if store.remove(row.id) is not None
        ]
        return CacheEntriesResponse(
            total_count=len(removed), entries=[describe(row) for row in removed]
        )

    @api.get("/uploads", operation_id="cache-uploads")
    async def uploads() -> CacheUploadsResponse:
        found = [
            CacheUploadOut(
                id=row.id,
                repository=row.repository,
                ref=row.scope,
                key=row.key,
                version=row.version,
                received_bytes=received,
                sealed=row.layout is not None,
                reserved_at=_iso(row.reserved_at),
            )
            for row, received in get_service().store.uploads()
        ]
        return CacheUploadsResponse(total_count=len(found), uploads=found)

    @api.get("/metrics", operation_id="cache-metrics")
    async def metrics() -> CacheMetricsResponse:
        try:
            service = get_service()
        except HTTPException as off:
            if off.status_code != 404:
                raise
            return metrics_off(str(off.detail))
        store = service.store
        usage = store.usage()
        counts: dict[str, int] = {}
        for row in store.entries():
            counts[row.repository] = counts.get(row.repository, 0) + 1
        return CacheMetricsResponse(
            repositories={
                repository: CacheRepositoryCounters.model_validate(counters)
                for repository, counters in service.metrics.snapshot().items()
            },
            usage_bytes=usage,
            entry_counts=counts,
            host_bytes=sum(usage.values()),
            limits=CacheLimitsOut(
                repository_bytes=store.limits.repository_bytes,
                host_bytes=store.limits.host_bytes,
            ),
        )

    @api.post("/scrub", operation_id="cache-scrub")
    async def scrub() -> CacheScrubResponse:
        report = await get_service().scrub()
        return CacheScrubResponse(
            checked=report.checked,
            corrupt=[describe(row) for row in report.corrupt],
            expired_uploads=list(report.expired),
        )

    return api
