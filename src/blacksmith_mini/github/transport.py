"""An httpx2 transport that guards every GitHub request.

It is the one place that knows GitHub's rate-limit rules (``../shared/reference/github.md``):
a client-wide cap on concurrent requests; mutating requests serialized and spaced; after a
403/429 it waits ``retry-after``, else until ``x-ratelimit-reset`` when nothing remains, else
backs off exponentially from 60 s; while blocked it answers locally with ``RateLimited``
without sending anything. It records the budget left and counts 304 answers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import httpx2

from blacksmith_mini.github import errors

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
        self._record(response)
        return response

    def _record(self, response: httpx2.Response) -> None:
        headers = response.headers
        now = self._clock()
        if "x-ratelimit-remaining" in headers:
            self.state.remaining = int(headers["x-ratelimit-remaining"])
            self.state.limit = int(headers.get("x-ratelimit-limit", "0")) or None
            self.state.reset_at = float(headers.get("x-ratelimit-reset", "0")) or None
        if response.status_code == 304:
            self.state.not_modified += 1
        if response.status_code in (403, 429) and self._is_rate_limit(response):
            self.state.consecutive_limits += 1
            self.state.blocked_until = now + self._wait_seconds(response, now)
            self.state.last_error = (
                f"rate limited (HTTP {response.status_code}); waiting until "
                f"{time.ctime(self.state.blocked_until)}"
            )
        elif response.status_code >= 500:
            self.state.errors += 1
            self.state.last_error = f"GitHub answered HTTP {response.status_code}"
        elif response.status_code < 400 or response.status_code in (404, 409, 422):
            self.state.consecutive_limits = 0
            self.state.blocked_until = None
            self.state.last_ok_at = now
            self.state.last_error = None

    @staticmethod
    def _is_rate_limit(response: httpx2.Response) -> bool:
        headers = response.headers
        if response.status_code == 429 or "retry-after" in headers:
            return True
        return headers.get("x-ratelimit-remaining") == "0"

    def _wait_seconds(self, response: httpx2.Response, now: float) -> float:
        headers = response.headers
        if "retry-after" in headers:
            try:
                return max(1.0, float(headers["retry-after"]))
            except ValueError:
                pass
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            return max(1.0, float(headers["x-ratelimit-reset"]) - now)
        backoff: float = 60.0 * 2 ** (self.state.consecutive_limits - 1)
        return min(3600.0, backoff)

    async def aclose(self) -> None:
        await self._inner.aclose()
