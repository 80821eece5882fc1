"""Cache service v1: the REST ``_apis/artifactcache`` the client used before Twirp (and GHES).

Requests (``@actions/cache`` ``internal/cacheHttpClient.ts``; identical in 3.3.0, the last
release that speaks only v1, and in 6.3.0's v1 path), all relative to ``ACTIONS_CACHE_URL``:

- ``GET cache?keys=k1,k2&version=V``: 200 with ``archiveLocation`` (our signed blob URL) on a
  hit; 204 on a miss (the client reads 204 as "not found"; anything else non-2xx is an error).
- ``GET caches?key=K``: only sent in debug mode, to list similar entries after a miss.
- ``POST caches`` ``{key, version, cacheSize}`` -> ``{cacheId}``. A taken key is 409 with
  GitHub's "Cache already exists. Scope: ..., Key: ..., Version: ..." (the client: "Unable to
  reserve cache with key K, another job may be creating this cache", info, returns -1); 400 is
  "over the data cap"; a read-only token gets 403 ``cache write denied: ...`` (6.3.0 raises
  ``CacheWriteDeniedError`` and warns; 3.3.0 folds it into the same "Unable to reserve").
- ``PATCH caches/{id}`` with ``Content-Range: bytes S-E/*``: 32 MiB chunks, 4 in parallel.
- ``POST caches/{id}`` ``{size}``: commit; refused unless the chunks cover ``0..size-1``.

A token with no readable scope gets 403 ``cache read denied: ...`` on lookup (a miss with a
warning for the client). Uploads are the token's own: another VM, repository or scope gets 404.
"""

from __future__ import annotations

import datetime
import re

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from blacksmith_mini.cache import parts, scope, tokens
from blacksmith_mini.cache.index import Row
from blacksmith_mini.cache.parts import chunk_part_name
from blacksmith_mini.cache.service import CacheService, read_object
from blacksmith_mini.cache.store import Conflict, IncompleteUpload, NotPending, OverCap
from blacksmith_mini.cache.twirp import READ_DENIED, WRITE_DENIED

PREFIX = "/_apis/artifactcache"
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\*|\d+)$")


def _message(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "typeKey": "ArtifactCacheException"}, status)


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat().replace("+00:00", "Z")


def _describe(row: Row) -> dict[str, object]:
    return {
        "cacheKey": row.key,
        "cacheVersion": row.version,
        "scope": row.scope,
        "creationTime": _iso(row.created_at),
    }


def router(service: CacheService) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)
    store = service.store

    def owned_upload(claim: tokens.Claim, ident: int) -> Row | None:
        try:
            row = store.pending_upload(ident)
        except NotPending:
            return None
        mine = (
            row.repository == claim.repository
            and row.scope == claim.write
            and row.owner == claim.vm_id
        )
        return row if mine else None

    @api.get("/cache")
    async def lookup(request: Request, keys: str = "", version: str = "") -> Response:
        try:
            claim = await service.claim(request)
        except tokens.TokenError as error:
            return _message(401, str(error))
        counters = service.metrics.of(claim.repository)
        if not claim.reads:
            counters.denied += 1
            return _message(403, READ_DENIED)
        wanted = [k for k in keys.split(",") if k]
        if not wanted or len(wanted) > scope.MAX_KEYS or not all(map(scope.valid_key, wanted)):
            return _message(400, "keys must be 1 to 10 keys of at most 512 characters")
        hit = store.lookup(
            repository=claim.repository,
            reads=claim.reads,
            key=wanted[0],
            restore_keys=wanted[1:],
            version=version,
        )
        if hit is None:
            counters.misses += 1
            return Response(status_code=204)
        counters.hits += 1
        if hit.key != wanted[0]:
            counters.restore_key_hits += 1
        body = _describe(hit) | {"archiveLocation": service.download_url(request, hit.id)}
        return JSONResponse(body)

    @api.get("/caches")
    async def similar(request: Request, key: str = "") -> Response:
        try:
            claim = await service.claim(request)
        except tokens.TokenError as error:
            return _message(401, str(error))
        rows = [
            row
            for row in store.entries(repository=claim.repository, key=key)
            if row.scope in claim.reads
        ]
        return JSONResponse({"totalCount": len(rows), "artifactCaches": list(map(_describe, rows))})

    @api.post("/caches")
    async def reserve(request: Request) -> Response:
        try:
            claim = await service.claim(request)
            body = await read_object(request)
        except tokens.TokenError as error:
            return _message(401, str(error))
        except ValueError:
            return _message(400, "the body is not a JSON object")
        counters = service.metrics.of(claim.repository)
        if claim.write is None:
            counters.denied += 1
            return _message(403, WRITE_DENIED)
        key, version = body.get("key"), body.get("version")
        size = body.get("cacheSize")
        if not isinstance(key, str) or not scope.valid_key(key) or not isinstance(version, str):
            return _message(400, "key and version are required")
        try:
            ident = store.reserve(
                repository=claim.repository,
                scope=claim.write,
                key=key,
                version=version,
                owner=claim.vm_id,
                size_hint=size if isinstance(size, int) else None,
            )
        except Conflict:
            counters.conflicts += 1
            return _message(
                409, f"Cache already exists. Scope: {claim.write}, Key: {key}, Version: {version}"
            )
        except OverCap as error:
            return _message(400, f"Cache size is over the data cap limit: {error}")
        return JSONResponse({"cacheId": ident}, status_code=201)

    @api.patch("/caches/{ident}")
    async def upload_chunk(ident: int, request: Request) -> Response:
        try:
            claim = await service.claim(request)
        except tokens.TokenError as error:
            return _message(401, str(error))
        if owned_upload(claim, ident) is None:
            return _message(404, "no such cache upload")
        found = _RANGE.match(request.headers.get("content-range", ""))
        if found is None or int(found[2]) < int(found[1]):
            return _message(400, "Content-Range must be 'bytes START-END/*'")
        start, end = int(found[1]), int(found[2])
        counters = service.metrics.of(claim.repository)
        try:
            part = await store.receive_part(
                ident,
                request.stream(),
                name=chunk_part_name(start),
                expected=end - start + 1,
                start=start,
            )
        except NotPending:
            return _message(404, "no such cache upload")
        except (parts.TooLarge, parts.Incomplete) as error:
            return _message(400, str(error))
        counters.bytes_in += part.size
        return Response(status_code=204)

    @api.post("/caches/{ident}")
    async def commit(ident: int, request: Request) -> Response:
        try:
            claim = await service.claim(request)
            body = await read_object(request)
        except tokens.TokenError as error:
            return _message(401, str(error))
        except ValueError:
            return _message(400, "the body is not a JSON object")
        if owned_upload(claim, ident) is None:
            return _message(404, "no such cache upload")
        size = body.get("size")
        if not isinstance(size, int) or size < 0:
            return _message(400, "size is required")
        try:
            store.seal_ranges(ident, size)
            committed = store.commit(ident, size=size)
        except (IncompleteUpload, OverCap) as error:
            return _message(400, str(error))
        service.metrics.of(claim.repository).saves += 1
        service.count_evictions(committed.evicted)
        return Response(status_code=204)

    return api
