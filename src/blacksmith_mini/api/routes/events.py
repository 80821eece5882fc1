"""``GET /api/events``: server-sent events pushing the status the moment it changes.

On connect, and after every published view (coalesced to at most one per 100 ms), the stream
sends ``event: status`` whose data is exactly ``GET /api/status``'s JSON and whose id is the
view's version. FastAPI adds a keep-alive comment every 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.api.routes.status import RENDERED

router = APIRouter(tags=["events"])
COALESCE_SECONDS = 0.1


@router.get("/api/events", response_class=EventSourceResponse)
async def stream_events(runtime: RuntimeDep, request: Request) -> AsyncIterator[ServerSentEvent]:
    """A live stream of ``status`` events (see the module docstring)."""
    changed = runtime.loop.subscribe()
    try:
        last = -1
        while True:
            version = runtime.loop.view.version
            if version != last:
                last = version
                yield ServerSentEvent(
                    raw_data=RENDERED.body(runtime).decode(), event="status", id=str(version)
                )
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=5.0)
            if await request.is_disconnected():
                return
            await asyncio.sleep(COALESCE_SECONDS)
    finally:
        runtime.loop.unsubscribe(changed)
