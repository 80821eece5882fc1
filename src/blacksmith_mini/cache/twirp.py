"""Cache service v2: the Twirp ``github.actions.results.api.v1.CacheService``, JSON flavour.

The client (``@actions/cache`` ``internal/shared/cacheTwirpClient.ts``) posts JSON with proto
field names (``key``, ``version``, ``restore_keys``, ``size_bytes`` as a string) to
``new URL('/twirp/<service>/<method>', ACTIONS_RESULTS_URL)`` — an absolute path, so this
router must sit at the root of its host whatever path ``ACTIONS_RESULTS_URL`` has. Answers use
proto field names too (the client's ``fromJson`` reads both spellings).

What each answer makes the client do (``cache.ts``, 6.3.0):

- ``CreateCacheEntry`` on a taken key: GitHub answers Twirp ``already_exists`` (HTTP 409, "cache
  entry with the same key, version, and scope already exists"); the client throws it away as a
  ``ReserveCacheError`` ("another job may be creating this cache", an info line) and
  ``saveCache`` returns -1. An ``ok: false`` answer would end the same way.
- A read-only token: ``ok: false`` with a message starting ``cache write denied:`` (HTTP 200,
  as GitHub does); the client raises ``CacheWriteDeniedError`` and warns, no retry.
- ``GetCacheEntryDownloadURL`` with no readable scope: Twirp ``permission_denied`` (403) whose
  message holds ``cache read denied:``; the client treats it as a miss with a warning.
- A miss is ``{"ok": false}``; 4xx answers are never retried, 5xx are (5 attempts).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from blacksmith_mini.cache import scope, tokens
from blacksmith_mini.cache.service import CacheService, read_object
from blacksmith_mini.cache.store import Conflict, IncompleteUpload, OverCap

SERVICE = "github.actions.results.api.v1.CacheService"
PREFIX = f"/twirp/{SERVICE}"
WRITE_DENIED = "cache write denied: token has no writable scopes"
READ_DENIED = "cache read denied: token has no readable cache scopes"
ALREADY_EXISTS = "cache entry with the same key, version, and scope already exists"

_STATUS = {
    "invalid_argument": 400,
    "malformed": 400,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "internal": 500,
}


class TwirpError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _error(code: str, msg: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=_STATUS[code])


def _field(body: dict[str, Any], name: str, camel: str) -> Any:
    return body.get(name, body.get(camel))


def _text(body: dict[str, Any], name: str, camel: str | None = None) -> str:
    value = _field(body, name, camel or name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TwirpError("invalid_argument", f"{name} must be a string")
    return value


def _checked_key(key: str) -> str:
    if not scope.valid_key(key):
        raise TwirpError("invalid_argument", "key must be 1-512 characters without commas")
    return key


class TwirpCalls:
    """The three methods; each takes the verified claim and the decoded body."""

    def __init__(self, service: CacheService) -> None:
        self.service = service

    def create(self, request: Request, claim: tokens.Claim, body: dict[str, Any]) -> object:
        counters = self.service.metrics.of(claim.repository)
        if claim.write is None:
            counters.denied += 1
            return {"ok": False, "message": WRITE_DENIED}
        key = _checked_key(_text(body, "key"))
        version = _text(body, "version")
        if not version:
            raise TwirpError("invalid_argument", "version is required")
        try:
            ident = self.service.store.reserve(
                repository=claim.repository,
                scope=claim.write,
                key=key,
                version=version,
                owner=claim.vm_id,
            )
        except Conflict:
            counters.conflicts += 1
            raise TwirpError("already_exists", ALREADY_EXISTS) from None
        return {"ok": True, "signed_upload_url": self.service.upload_url(request, ident)}

    def finalize(self, claim: tokens.Claim, body: dict[str, Any]) -> object:
        counters = self.service.metrics.of(claim.repository)
        if claim.write is None:
            counters.denied += 1
            return {"ok": False, "message": WRITE_DENIED}
        key, version = _text(body, "key"), _text(body, "version")
        raw_size = _field(body, "size_bytes", "sizeBytes")
        try:
            size = int(raw_size if raw_size is not None else 0)
        except (TypeError, ValueError):
            raise TwirpError("invalid_argument", "size_bytes must be an integer") from None
        store = self.service.store
        row = store.find_pending(
            repository=claim.repository, scope=claim.write, key=key, version=version
        )
        if row is None or row.owner != claim.vm_id:
            raise TwirpError("not_found", "no cache entry is being created with this key")
        try:
            committed = store.commit(row.id, size=size)
        except (IncompleteUpload, OverCap) as error:
            return {"ok": False, "message": f"cache entry not finalized: {error}"}
        counters.saves += 1
        self.service.count_evictions(committed.evicted)
        return {"ok": True, "entry_id": str(committed.entry.id)}

    def download_url(self, request: Request, claim: tokens.Claim, body: dict[str, Any]) -> object:
        counters = self.service.metrics.of(claim.repository)
        if not claim.reads:
            counters.denied += 1
            raise TwirpError("permission_denied", READ_DENIED)
        key = _checked_key(_text(body, "key"))
        restore_keys = _field(body, "restore_keys", "restoreKeys") or []
        if not isinstance(restore_keys, list) or len(restore_keys) + 1 > scope.MAX_KEYS:
            raise TwirpError("invalid_argument", "at most 10 keys")
        for item in restore_keys:
            if not isinstance(item, str):
                raise TwirpError("invalid_argument", "restore_keys must be strings")
            _checked_key(item)
        hit = self.service.store.lookup(
            repository=claim.repository,
            reads=claim.reads,
            key=key,
            restore_keys=restore_keys,
            version=_text(body, "version"),
        )
        if hit is None:
            counters.misses += 1
            return {"ok": False}
        counters.hits += 1
        if hit.key != key:
            counters.restore_key_hits += 1
        return {
            "ok": True,
            "signed_download_url": self.service.download_url(request, hit.id),
            "matched_key": hit.key,
        }


def router(service: CacheService) -> APIRouter:
    calls = TwirpCalls(service)
    api = APIRouter()

    @api.post(PREFIX + "/{method}", include_in_schema=False)
    async def call(method: str, request: Request) -> Response:
        if "json" not in request.headers.get("content-type", "application/json"):
            return _error("bad_route", "only the JSON flavour of Twirp is served")
        try:
            claim = await service.claim(request)
        except tokens.TokenError as error:
            return _error("unauthenticated", str(error))
        try:
            decoded = await read_object(request)
        except ValueError:
            return _error("malformed", "the body is not a JSON object")
        try:
            if method == "CreateCacheEntry":
                answer = calls.create(request, claim, decoded)
            elif method == "FinalizeCacheEntryUpload":
                answer = calls.finalize(claim, decoded)
            elif method == "GetCacheEntryDownloadURL":
                answer = calls.download_url(request, claim, decoded)
            else:
                return _error("bad_route", f"no method {method}")
        except TwirpError as error:
            return _error(error.code, error.msg)
        return JSONResponse(answer)

    return api
