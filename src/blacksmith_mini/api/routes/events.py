"""``GET /api/events``: server-sent events pushing what changed in the status, as it changes.

- ``event: snapshot``, first: data is exactly ``GET /api/status``'s JSON, id its version
  (``snapshot_version``).
- ``event: delta``, then, on every change of the view's content (at least every 5 s, when the
  loop's heartbeat moves its clocks): data is ``{"from": N, "to": M, "fields": {...},
  "collections": {...}}`` (the format is in ``api/status_delta.py``), id is ``M``. Applied in
  order to the snapshot, the deltas give exactly the status of version ``M``. A client holding
  another version than ``from`` must resync (reconnect without ``Last-Event-ID``).
- Resuming: a reconnect with ``Last-Event-ID: N`` (or ``?last_event_id=N`` where the header
  cannot be set) gets only the deltas after ``N`` while the server still keeps them (the last
  256, ``api/stream_publisher.py``), else a fresh ``snapshot``. Nothing, if ``N`` is the latest.
- A slow client never builds a backlog: it is sent the deltas it misses from the shared ring,
  or one snapshot when that would be smaller or they are gone. Changes less than 100 ms after
  the last one sent to a client wait for the rest of those 100 ms and go together.
- A ``: heartbeat`` comment after 5 s without events (keeps proxies from closing it).

The deltas are computed, serialized and framed once per change for every client
(``stream_publisher``), so the route streams those bytes itself rather than have FastAPI
encode each event for each client; ``GET /api/status`` stays whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.api.stream_publisher import Frame, StatusPublisher, status_publisher
from blacksmith_mini.runtime import Runtime

router = APIRouter(tags=["events"])
COALESCE_SECONDS = 0.1
HEARTBEAT_SECONDS = 5.0
HEARTBEAT = b": heartbeat\n\n"
# What each item of the stream is (as FastAPI documents its own event streams).
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string", "enum": ["snapshot", "delta"]},
        "id": {"type": "string"},
    },
}

DESCRIPTION = """A live stream of the status (server-sent events).

- `event: snapshot` first: `data` is exactly `GET /api/status`'s JSON; `id` is its
  `snapshot_version`.
- `event: delta` on every change (at least every 5 s): `data` is
  `{"from": N, "to": M, "fields": {...}, "collections": {...}}`, `id` is `M`.
  `fields` holds the top-level members that changed, each replaced whole. `collections` holds
  the keyed lists that changed (`vms` by `vm_id`; `queued_jobs`, `running_jobs`,
  `unmatched_jobs` by `id`; `pools` by `name`), each as
  `{"key": "vm_id", "upsert": [...], "remove": [...], "order": [...]}`: drop the `remove`d keys,
  merge each `upsert` member by member into the entity with its key or append it when new,
  then, if `order` is given, order the entities by it. A client not at version `N` must resync
  (reconnect without `Last-Event-ID`: it gets a snapshot).
- Reconnecting with `Last-Event-ID` (header, or `?last_event_id=`) resumes with only the
  deltas after that version while the server keeps them (the last 256), else a `snapshot`.
- A `: heartbeat` comment after 5 s without events.
"""


class EventStream(StreamingResponse):
    """A ``text/event-stream`` of bytes already framed (not FastAPI's ``EventSourceResponse``,
    which would encode each event for each client again)."""

    media_type = "text/event-stream"


def _resume_from(*values: str | None) -> int | None:
    for value in values:
        with contextlib.suppress(ValueError, TypeError):
            return int(str(value).strip())
    return None


def _catch_up(publisher: StatusPublisher, frame: Frame, held: int | None) -> Iterator[bytes]:
    """The events that take a client holding version ``held`` (None: nothing) to ``frame``:
    the deltas it misses, or the snapshot when they are more bytes. One delta goes as it is
    (a delta is never much more than the status it leads to), so that the snapshot of a frame
    that every client follows is never serialized."""
    missing = None if held is None else publisher.since(held)
    if missing is not None and (
        len(missing) == 1 or sum(len(d.data) for d in missing) < len(frame.snapshot)
    ):
        for delta in missing:
            yield delta.event
    else:
        yield frame.event


async def _events(
    runtime: Runtime, publisher: StatusPublisher, *, held: int | None
) -> AsyncIterator[bytes]:
    """The stream's bytes: the events (framed once by the publisher for every client)."""
    changed = runtime.loop.subscribe()
    try:
        published_at = 0.0
        while True:
            changed.clear()
            frame = publisher.latest(runtime)
            if held != frame.version:
                for event in _catch_up(publisher, frame, held):
                    yield event
                held, published_at = frame.version, frame.published_at
            try:
                async with asyncio.timeout(HEARTBEAT_SECONDS):
                    await changed.wait()
            except TimeoutError:
                yield HEARTBEAT
            # Changes closer than COALESCE_SECONDS to the last one sent wait and go together
            # (measured from its publication, so a busy server adds no delay to spaced ones).
            wait = published_at + COALESCE_SECONDS - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, COALESCE_SECONDS))
    finally:
        runtime.loop.unsubscribe(changed)


@router.get(
    "/api/events",
    response_class=EventStream,
    responses={
        200: {
            "description": "The stream (see above).",
            "content": {"text/event-stream": {"itemSchema": EVENT_SCHEMA}},
        },
        **schemas.READ_ERRORS,
    },
    description=DESCRIPTION,
)
async def stream_events(
    runtime: RuntimeDep,
    request: Request,
    last_event_id: Annotated[
        str | None, Header(description="The id of the last event received: resume after it.")
    ] = None,
    resume: Annotated[
        str | None,
        Query(alias="last_event_id", description="As the `Last-Event-ID` header."),
    ] = None,
) -> EventStream:
    """A live stream of ``snapshot`` and ``delta`` events (see the description)."""
    held = _resume_from(last_event_id, resume)
    return EventStream(
        _events(runtime, status_publisher(request), held=held),
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
