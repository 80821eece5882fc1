"""The cache service's configuration and shared state, and the helpers its routers share.

``CacheService`` owns the store, the metrics and the secret; the routers (``twirp``, ``v1``,
``blob``, ``admin``) take it as their only dependency and ``app.create_cache_app`` puts them
together. The service trusts nothing a client says about who it is: the repository and the
scopes come from the verified token, never from a header or the request body.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request

from blacksmith_mini.cache import tokens
from blacksmith_mini.cache.index import Row
from blacksmith_mini.cache.metrics import CacheMetrics
from blacksmith_mini.cache.store import CacheStore, Limits, ScrubReport

BLOB_ACCOUNT = "cache"
SMALL_BODY_LIMIT = 1 << 20


class BodyTooLarge(Exception):
    """A request body that should be small (JSON, a block list) is not."""


@dataclass(frozen=True)
class CacheConfig:
    """Where the cache lives and how long its URLs and reservations last.

    ``public_url`` is the base URL VMs reach this service at (``http://host:port/``); when
    unset, the signed URLs reuse the scheme and host of the request that asked for them.
    """

    directory: Path
    limits: Limits = field(default_factory=Limits)
    url_ttl_seconds: int = 6 * 3600
    public_url: str | None = None
    verify_on_serve: bool = True


class CacheService:
    """By default a request must carry a token minted with ``secret``. A token that names only
    its VM (``tokens.vm_token``: the control plane mints one per VM before its job is known)
    gets its repository and scopes from ``resolve(vm_id)``, which raises ``tokens.TokenError``
    when it cannot say (no job linked, VM gone)."""

    def __init__(
        self,
        config: CacheConfig,
        *,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        resolve: Callable[[str], Awaitable[tokens.Claim]] | None = None,
    ) -> None:
        self.config = config
        self.secret = secret
        self.clock = clock
        self.resolve = resolve
        self.store = CacheStore(config.directory, config.limits, clock=clock)
        self.metrics = CacheMetrics()

    def close(self) -> None:
        self.store.close()

    async def claim(self, request: Request) -> tokens.Claim:
        """The verified claim of the request's bearer token; ``tokens.TokenError`` otherwise."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise tokens.TokenError("no bearer token")
        claim = tokens.verify(self.secret, credential.strip(), now=self.clock())
        if not claim.names_vm_only:
            return claim
        if self.resolve is None:
            raise tokens.TokenError("this service cannot resolve VM tokens")
        return await self.resolve(claim.vm_id)

    def base_url(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/") + "/"
        return str(request.base_url).rstrip("/") + "/"

    def _blob_url(self, request: Request, *, permission: str, kind: str, ident: int) -> str:
        expires = int(self.clock()) + self.config.url_ttl_seconds
        sig = tokens.sign_blob(
            self.secret, permission=permission, kind=kind, ident=ident, expires_at=expires
        )
        return (
            f"{self.base_url(request)}_blob/{BLOB_ACCOUNT}/{kind}/{ident}"
            f"?sv=2024-11-04&sr=b&sp={permission}&se={expires}&sig={sig}"
        )

    def upload_url(self, request: Request, ident: int) -> str:
        return self._blob_url(request, permission="w", kind="uploads", ident=ident)

    def download_url(self, request: Request, ident: int) -> str:
        return self._blob_url(request, permission="r", kind="entries", ident=ident)

    def count_evictions(self, evicted: Sequence[Row]) -> None:
        for victim in evicted:
            counters = self.metrics.of(victim.repository)
            counters.evictions += 1
            counters.evicted_bytes += victim.size

    async def scrub(self) -> ScrubReport:
        """Runs the store's scrub in a worker thread and counts what it removed."""
        report = await anyio.to_thread.run_sync(self.store.scrub)
        for row in report.corrupt:
            self.metrics.of(row.repository).corrupt += 1
        return report

    async def run_scrubber(self, interval_seconds: float) -> None:
        """Scrubs forever, every ``interval_seconds``: run it in the host's task group."""
        while True:
            await anyio.sleep(interval_seconds)
            await self.scrub()


async def read_small(request: Request, limit: int = SMALL_BODY_LIMIT) -> bytes:
    """The whole body of a request that must be small; ``BodyTooLarge`` past ``limit``."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
    return bytes(data)


async def read_object(request: Request) -> dict[str, Any]:
    """A small JSON object body (``{}`` when empty); ``ValueError`` when it is not one: too
    large, not JSON, or JSON but not an object."""
    try:
        decoded = json.loads(await read_small(request) or b"{}")
    except BodyTooLarge as error:
        raise ValueError(str(error)) from error
    if not isinstance(decoded, dict):
        raise ValueError("the body is not a JSON object")
    return decoded
