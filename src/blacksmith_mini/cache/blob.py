"""The Azure Blob subset ``@azure/storage-blob`` 12.31 sends for ``@actions/cache``, on our disk.

Upload (v2 ``saveCache`` -> ``uploadUtils.ts`` -> ``BlockBlobClient.uploadFile`` with 64 MiB
blocks, 8 in parallel, ``maxSingleShotSize`` 128 MiB):

- an archive of at most 128 MiB is one **Put Blob** (``PUT``, no ``comp``,
  ``x-ms-blob-type: BlockBlob``) -> 201;
- a larger one is **Put Block** (``PUT ?comp=block&blockid=<base64>``) per block -> 201, then
  **Put Block List** (``PUT ?comp=blocklist``, XML ``<BlockList><Latest>id</Latest>...``) -> 201.

Download (``downloadUtils.ts``): the client uses the Azure SDK only when the URL's host ends in
``.blob.core.windows.net``; then **Get Blob Properties** (``HEAD``) for the length, and ranged
**Get Blob** (``x-ms-range: bytes=S-E``, 4 MiB ranges, 8 in parallel, retried with
``If-Match: <ETag>``) answered 206 with ``Content-Range``; ``Content-Length`` and ``ETag`` are
required by the SDK. For any other host (our loopback and VM-bridge URLs) it sends one plain
``GET`` and checks the length it received against ``Content-Length``. Both are served here.

The URL's own signature (``sp``, ``se``, ``sig``) authorises it: ``w`` on one upload, ``r`` on
one committed entry. Errors are Azure's XML with ``x-ms-error-code``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import AsyncIterator
from email.utils import formatdate

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from blacksmith_mini.cache import parts, tokens
from blacksmith_mini.cache.index import Row
from blacksmith_mini.cache.parts import BLOB_PART, block_part_name
from blacksmith_mini.cache.service import CacheService, read_small
from blacksmith_mini.cache.store import IncompleteUpload, NotPending

PREFIX = "/_blob"
X_MS_VERSION = "2024-11-04"
BLOCK_LIST_LIMIT = 8 << 20
_BLOCK_ENTRY = re.compile(rb"<(Latest|Committed|Uncommitted)>\s*([^<\s]*)\s*</\1>")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    found = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-version": X_MS_VERSION}
    return found | (extra or {})


def _error(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    headers = _headers({"x-ms-error-code": code} | (extra or {}))
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


def _etag(row: Row) -> str:
    return f'"0x{row.id:X}{(row.sha256 or "")[:12].upper()}"'


def _properties(row: Row) -> dict[str, str]:
    modified = formatdate(row.created_at, usegmt=True)
    return _headers(
        {
            "ETag": _etag(row),
            "Last-Modified": modified,
            "x-ms-creation-time": modified,
            "x-ms-blob-type": "BlockBlob",
            "x-ms-lease-state": "available",
            "x-ms-lease-status": "unlocked",
            "x-ms-server-encrypted": "false",
            "Accept-Ranges": "bytes",
        }
    )


def _block_ids(body: bytes) -> list[str] | None:
    found = [match[2].decode("ascii", "replace") for match in _BLOCK_ENTRY.finditer(body)]
    if b"<BlockList" not in body:
        return None
    return found


def _valid_block_id(block_id: str) -> bool:
    try:
        decoded = base64.b64decode(block_id, validate=True)
    except (binascii.Error, ValueError):
        return False
    return 0 < len(decoded) <= 64


def _signed(
    service: CacheService, request: Request, *, permission: str, kind: str, ident: int
) -> bool:
    query = request.query_params
    try:
        tokens.verify_blob(
            service.secret,
            permission=permission,
            kind=kind,
            ident=ident,
            expires_at=query.get("se"),
            sig=query.get("sig"),
            now=service.clock(),
        )
    except tokens.TokenError:
        return False
    return query.get("sp") == permission


def router(service: CacheService) -> APIRouter:
    api = APIRouter(prefix=PREFIX, include_in_schema=False)
    store = service.store

    @api.put("/{account}/uploads/{ident}")
    async def put(ident: int, request: Request) -> Response:
        if not _signed(service, request, permission="w", kind="uploads", ident=ident):
            return _error(403, "AuthenticationFailed", "The URL signature does not verify.")
        try:
            row = store.pending_upload(ident)
        except NotPending:
            return _error(404, "BlobNotFound", "No upload in progress at this URL.")
        comp = request.query_params.get("comp")
        if comp == "blocklist":
            return await _put_block_list(ident, request)
        length = request.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        if comp == "block":
            block_id = request.query_params.get("blockid", "")
            if not _valid_block_id(block_id):
                return _error(400, "InvalidQueryParameterValue", "blockid is not valid base64.")
            name, start = block_part_name(block_id), None
        elif comp is None:
            if request.headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
                return _error(400, "InvalidHeaderValue", "Only block blobs are stored here.")
            name, block_id, start = BLOB_PART, "", None
        else:
            return _error(400, "UnsupportedQueryParameter", f"comp={comp} is not supported.")
        try:
            part = await store.receive_part(
                ident,
                request.stream(),
                name=name,
                expected=expected,
                block_id=block_id or None,
                start=start,
            )
        except NotPending:
            return _error(404, "BlobNotFound", "No upload in progress at this URL.")
        except parts.TooLarge:
            return _error(413, "RequestBodyTooLarge", "The cache entry is over the cap.")
        except parts.Incomplete:
            return _error(400, "InvalidInput", "The body ended before Content-Length.")
        service.metrics.of(row.repository).bytes_in += part.size
        if comp is None:
            store.seal_blob(ident)
        return Response(status_code=201, headers=_headers({"ETag": f'"{part.sha256[:16]}"'}))

    async def _put_block_list(ident: int, request: Request) -> Response:
        block_ids = _block_ids(await read_small(request, BLOCK_LIST_LIMIT))
        if block_ids is None:
            return _error(400, "InvalidXmlDocument", "The body is not a block list.")
        try:
            store.seal_blocks(ident, block_ids)
        except IncompleteUpload as error:
            return _error(400, "InvalidBlockList", str(error))
        except NotPending:
            return _error(404, "BlobNotFound", "No upload in progress at this URL.")
        return Response(status_code=201, headers=_headers({"ETag": f'"0x{ident:X}"'}))

    @api.api_route("/{account}/entries/{ident}", methods=["GET", "HEAD"])
    async def get(ident: int, request: Request) -> Response:
        if not _signed(service, request, permission="r", kind="entries", ident=ident):
            return _error(403, "AuthenticationFailed", "The URL signature does not verify.")
        row = store.entry(ident)
        if row is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        headers = _properties(row)
        if_match = request.headers.get("if-match")
        if if_match not in (None, "*", headers["ETag"]):
            return _error(412, "ConditionNotMet", "The condition specified was not met.")
        if request.method == "HEAD":
            headers["Content-Length"] = str(row.size)
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        wanted = request.headers.get("x-ms-range") or request.headers.get("range")
        start, end, status = 0, row.size - 1, 200
        if wanted:
            parsed = _parse_range(wanted, row.size)
            if parsed is None:
                extra = {"Content-Range": f"bytes */{row.size}"}
                return _error(416, "InvalidRange", "The range is not satisfiable.", extra)
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{row.size}"
        headers["Content-Length"] = str(max(0, end - start + 1))
        return StreamingResponse(
            _serve(service, row, start=start, end=end),
            status_code=status,
            headers=headers,
            media_type="application/octet-stream",
        )

    return api


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    found = _RANGE.match(header.strip())
    if found is None or size == 0 or (not found[1] and not found[2]):
        return None
    if not found[1]:  # a suffix: the last N bytes
        count = int(found[2])
        return (max(0, size - count), size - 1) if count > 0 else None
    start = int(found[1])
    end = min(int(found[2]), size - 1) if found[2] else size - 1
    if start >= size or end < start:
        return None
    return start, end


async def _serve(
    service: CacheService, row: Row, *, start: int, end: int
) -> AsyncIterator[memoryview]:
    counters = service.metrics.of(row.repository)
    verify = service.config.verify_on_serve
    try:
        async for block in service.store.stream(row, start=start, end=end, verify=verify):
            counters.bytes_out += len(block)
            yield block
    except parts.CorruptPart:
        counters.corrupt += 1
        raise
