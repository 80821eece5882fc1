"""An httpx2 transport that guards every GitHub request.

It is the one place that knows GitHub's rate-limit rules (``../shared/reference/github.md``):
a client-wide cap on concurrent requests; mutating requests serialized and spaced. A 403/429
is a rate limit only when GitHub says so (``rate_limit_kind``): the *primary* limit
(``x-ratelimit-remaining: 0``) is waited out until ``x-ratelimit-reset``; a *secondary* limit
(a body saying "secondary rate limit", a ``retry-after``, or any 429) waits ``retry-after``,
else at least 60 s, doubling while it repeats (capped at 30 min), reset by a success. Any
other 403 is a permission error and blocks nothing. While blocked the transport answers
locally with ``RateLimited`` without sending anything. It records the budget left and counts
304 answers.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from blacksmith_mini.github import errors

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECONDARY_MIN_SECONDS = 60.0
SECONDARY_MAX_SECONDS = 1800.0
SECONDARY_WORDS = ("secondary rate limit", "abuse detection")


def rate_limit_kind(status: int, headers: Mapping[str, str], *, message: str) -> str | None:
    """``"primary"``, ``"secondary"`` or None (a 403 that is not a rate limit: permissions)."""
    if status not in (403, 429):
        return None
    if headers.get("x-ratelimit-remaining") == "0":
        return "primary"
    if status == 429 or "retry-after" in headers:
        return "secondary"
    text = message.lower()
    if any(words in text for words in SECONDARY_WORDS):
        return "secondary"
    return None


def error_message(body: bytes) -> str:
    """GitHub's ``message`` from an error body, else the body's start."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body[:200].decode(errors="replace")
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return ""


class BoundedCache(collections.OrderedDict[str, Any]):
    """The ETag cache gidgethub keeps per URL, evicting the least recently used entry."""

    def __init__(self, *, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


@dataclasses.dataclass
class RateState:
    """What we know of our GitHub budget, exported in /api/status and /metrics."""

    remaining: int | None = None
    limit: int | None = None
    reset_at: float | None = None
    blocked_until: float | None = None
    consecutive_limits: int = 0
    requests: int = 0
    not_modified: int = 0
    conditional: int = 0
    errors: int = 0
    last_ok_at: float | None = None
    last_error: str | None = None
    limit_kind: str | None = None  # "primary" | "secondary" while blocked


class GuardedTransport(httpx2.AsyncBaseTransport):
    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        *,
        max_concurrency: int = 10,
        mutation_spacing: float = 1.0,
        timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._slots = asyncio.Semaphore(max_concurrency)
        self._mutations = asyncio.Lock()
        self._spacing = mutation_spacing
        self._last_mutation = 0.0
        self._clock = clock
        self._timeout = timeout  # enforced here too: not every transport honours httpx's
        self._blocked_at = float("-inf")  # when the current (or last) block began
        self.state = RateState()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        now = self._clock()
        if self.state.blocked_until and now < self.state.blocked_until:
            raise errors.RateLimited(
                self.state.blocked_until,
                f"GitHub rate limit: no requests until {time.ctime(self.state.blocked_until)}",
            )
        if request.method in MUTATING:
            async with self._mutations:
                wait = self._last_mutation + self._spacing - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    return await self._send(request)
                finally:
                    self._last_mutation = time.monotonic()
        return await self._send(request)

    async def _send(self, request: httpx2.Request) -> httpx2.Response:
        if "if-none-match" in request.headers or "if-modified-since" in request.headers:
            self.state.conditional += 1
        sent_at = self._clock()
        async with self._slots:
            try:
                response = await asyncio.wait_for(
                    self._inner.handle_async_request(request), timeout=self._timeout
                )
            except TimeoutError as exc:
                self.state.errors += 1
                self.state.last_error = f"GitHub did not answer within {self._timeout:g}s"
                raise errors.GitHubUnavailable(self.state.last_error) from exc
            except httpx2.TransportError as exc:
                self.state.errors += 1
                self.state.last_error = f"GitHub unreachable: {exc.__class__.__name__}: {exc}"
                raise errors.GitHubUnavailable(self.state.last_error) from exc
        self.state.requests += 1
        message = ""
        if response.status_code in (403, 429):
            message = error_message(await response.aread())
        self._record(response, message, sent_at=sent_at)
        return response

    def _record(
        self, response: httpx2.Response, message: str = "", *, sent_at: float | None = None
    ) -> None:
        """Learn from one answer. Requests run concurrently: an answer to a request sent
        before the current block began says nothing about the block (its budget figures are
        older too), so it neither lifts the block nor overwrites what the limit said."""
        headers = response.headers
        now = self._clock()
        stale = sent_at is not None and sent_at < self._blocked_at
        if stale and response.status_code < 400:
            if response.status_code == 304:
                self.state.not_modified += 1
            return
        if "x-ratelimit-remaining" in headers:
            try:
                self.state.remaining = int(headers["x-ratelimit-remaining"])
                self.state.limit = int(headers.get("x-ratelimit-limit", "0")) or None
                self.state.reset_at = float(headers.get("x-ratelimit-reset", "0")) or None
            except ValueError:
                pass  # a malformed header must not fail the request
        if response.status_code == 304:
            self.state.not_modified += 1
        kind = rate_limit_kind(response.status_code, headers, message=message)
        if kind is not None:
            self.state.consecutive_limits += 1
            wait = self._wait_seconds(response, now, kind=kind)
            self.state.blocked_until = now + wait
            self._blocked_at = now
            self.state.limit_kind = kind
            said = f": {message[:120]}" if message else ""
            self.state.last_error = (
                f"{kind} rate limit (HTTP {response.status_code}{said}); no requests for "
                f"{wait:.0f}s, until {time.ctime(self.state.blocked_until)}"
            )
        elif response.status_code >= 500:
            self.state.errors += 1
            self.state.last_error = f"GitHub answered HTTP {response.status_code}"
        elif response.status_code < 400 or response.status_code in (404, 409, 422):
            self.state.consecutive_limits = 0
            self.state.blocked_until = None
            self.state.limit_kind = None
            self.state.last_ok_at = now
            self.state.last_error = None

    def _wait_seconds(self, response: httpx2.Response, now: float, *, kind: str) -> float:
        headers = response.headers
        if "retry-after" in headers:
            try:
                return max(1.0, float(headers["retry-after"]))
            except ValueError:
                pass
        if kind == "primary" and "x-ratelimit-reset" in headers:
            try:
                return max(1.0, float(headers["x-ratelimit-reset"]) - now)
            except ValueError:
                pass
        repeats = min(self.state.consecutive_limits - 1, 16)
        backoff: float = SECONDARY_MIN_SECONDS * 2**repeats
        return min(SECONDARY_MAX_SECONDS, backoff)

    async def aclose(self) -> None:
        await self._inner.aclose()
