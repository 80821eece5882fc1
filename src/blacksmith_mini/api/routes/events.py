"""``GET /api/events``: server-sent events pushing the status the moment it changes.

On connect, and whenever the view's content changes (at least every 5 s as a heartbeat), the
stream sends ``event: status`` whose data is exactly ``GET /api/status``'s JSON and whose id
is the view's version. A client that is slower than the changes gets the latest state, not a
backlog: events are coalesced to one per 100 ms, or per 500 ms when the payload is large.
FastAPI adds a keep-alive comment every 15 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.api.routes.status import rendered_status

router = APIRouter(tags=["events"])
COALESCE_SECONDS = 0.1
COALESCE_LARGE_SECONDS = 0.5
LARGE_BYTES = 128 * 1024


@router.get("/api/events", response_class=EventSourceResponse, responses=schemas.READ_ERRORS)
async def stream_events(runtime: RuntimeDep, request: Request) -> AsyncIterator[ServerSentEvent]:
    """A live stream of ``status`` events (see the module docstring)."""
    cache = rendered_status(request)
    changed = runtime.loop.subscribe()
    try:
        sent = -1
        while True:
            rendered = cache.get(runtime)
            if rendered.content_version != sent:
                sent = rendered.content_version
                yield ServerSentEvent(
                    raw_data=rendered.plain.decode(), event="status", id=str(rendered.version)
                )
            changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=5.0)
            if await request.is_disconnected():
                return
            large = len(rendered.plain) > LARGE_BYTES
            await asyncio.sleep(COALESCE_LARGE_SECONDS if large else COALESCE_SECONDS)
    finally:
        runtime.loop.unsubscribe(changed)
