"""Concurrent requests and a rate limit: an answer to a request sent before the limit hit
does not lift it (polls run concurrently, so this happens on every limit)."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from blacksmith_mini.github import errors, transport

pytestmark = pytest.mark.anyio


class Scripted(httpx2.AsyncBaseTransport):
    """``/slow`` answers 200 once ``release`` is set; ``/limited`` answers a primary 403."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/slow":
            self.arrived.set()
            await self.release.wait()
            return httpx2.Response(200, headers={"x-ratelimit-remaining": "4999"}, json={})
        return httpx2.Response(
            403,
            headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999999999"},
            json={"message": "API rate limit exceeded for installation."},
        )


async def test_an_older_success_does_not_lift_a_newer_rate_limit() -> None:
    inner = Scripted()
    guard = transport.GuardedTransport(inner, mutation_spacing=0.0)
    async with httpx2.AsyncClient(transport=guard, base_url="http://gh") as client:
        slow = asyncio.create_task(client.get("/slow"))
        await asyncio.wait_for(inner.arrived.wait(), timeout=10)  # /slow is in flight
        limited = await client.get("/limited")
        assert limited.status_code == 403 and guard.state.blocked_until is not None
        inner.release.set()
        assert (await slow).status_code == 200
        assert guard.state.blocked_until is not None, "the older success lifted the limit"
        assert guard.state.remaining == 0
        with pytest.raises(errors.RateLimited):
            await client.get("/slow")
