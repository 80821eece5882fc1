"""The event stream's publisher: the latest status and a bounded ring of recent deltas, per app.

Each time the view's content changes, the first stream client to notice renders the status once
and computes the delta from the previous one once (``status_delta.diff``); every client then
sends the same bytes, already framed as server-sent events. The ring keeps the last
``MAX_DELTAS`` deltas (at most ``MAX_BYTES`` of them), so a client that reconnects with
``Last-Event-ID`` (or falls behind) catches up with just what it missed, or gets a snapshot
when the ring no longer reaches back to its version.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import gc
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from fastapi.sse import format_sse_event

from blacksmith_mini.api import convert, schemas, status_delta
from blacksmith_mini.runtime import Runtime

MAX_DELTAS = 256
MAX_BYTES = 8 * 1024 * 1024


class Frame:
    """One published status: its value and its JSON (as ``GET /api/status`` answers it), and
    the ``event: snapshot`` carrying it, framed on first use (most frames only go as deltas).

    Nothing else of the render (its pydantic models) is kept: a frame outlives many garbage
    collections, and each object it holds is one more for every full one to go over."""

    def __init__(
        self, rendered: schemas.StatusResponse, *, version: int, content_version: int
    ) -> None:
        self.version = version
        self.content_version = content_version
        self.status: dict[str, Any] = rendered.model_dump(mode="json")
        self.snapshot = rendered.model_dump_json()
        self.published_at = time.monotonic()  # when it was rendered

    @functools.cached_property
    def event(self) -> bytes:
        """The ``event: snapshot`` carrying it, framed."""
        return format_sse_event(data_str=self.snapshot, event="snapshot", id=str(self.version))


@dataclasses.dataclass(frozen=True)
class Delta:
    """The change from one frame to the next, serialized and framed once for every client."""

    from_version: int
    to_version: int
    data: str

    @functools.cached_property
    def event(self) -> bytes:
        """The ``event: delta`` carrying it, framed."""
        return format_sse_event(data_str=self.data, event="delta", id=str(self.to_version))


class StatusPublisher:
    """The frames and deltas of one app's stream (its view versions are its own)."""

    def __init__(self, *, max_deltas: int = MAX_DELTAS, max_bytes: int = MAX_BYTES) -> None:
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._ring: collections.deque[Delta] = collections.deque()
        self._ring_bytes = 0
        self._max_deltas = max_deltas
        self._max_bytes = max_bytes

    def latest(self, runtime: Runtime) -> Frame:
        """The frame of the current view, rendered (and its delta computed) on first ask."""
        view = runtime.loop.view
        latest = self._latest
        if latest is not None and latest.content_version == view.content_version:
            return latest
        with self._lock, _collector_paused():
            latest = self._latest
            if latest is not None and latest.content_version == view.content_version:
                return latest
            rendered = convert.status(view, stuck=runtime.loop.is_stuck(view.at))
            frame = Frame(rendered, version=view.version, content_version=view.content_version)
            if latest is not None and frame.version > latest.version:
                change = status_delta.diff(
                    latest.status,
                    frame.status,
                    from_version=latest.version,
                    to_version=frame.version,
                )
                self._keep(Delta(latest.version, frame.version, _dumps(change)))
            else:  # the first, or not newer: the ring cannot lead to it
                self._ring.clear()
                self._ring_bytes = 0
            self._latest = frame
            return frame

    def since(self, version: int) -> list[Delta] | None:
        """The deltas that take a client from ``version`` to the latest frame ([] when it is
        there already), or None when the ring does not reach back to it (send a snapshot)."""
        latest = self._latest
        if latest is not None and version == latest.version:
            return []
        ring = list(self._ring)
        for index in range(len(ring) - 1, -1, -1):
            if ring[index].from_version == version:
                return ring[index:]
        return None

    def _keep(self, delta: Delta) -> None:
        self._ring.append(delta)
        self._ring_bytes += len(delta.data)
        while len(self._ring) > self._max_deltas or (
            self._ring_bytes > self._max_bytes and len(self._ring) > 1
        ):
            self._ring_bytes -= len(self._ring.popleft().data)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No garbage collection while a frame is built (tens of thousands of objects at once, in
    one go, nothing cyclic: reference counting frees what does not last). Left on, the collector
    would pass over the frame under construction again and again, promoting it as it goes and
    so bringing the next full collection, a pause for every client of every route, much sooner
    (and each pass costs time of its own: a third of a frame's time at 1,000 VMs)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def status_publisher(request: Request) -> StatusPublisher:
    """The app's own publisher (one per app: view versions of different apps are unrelated)."""
    found: StatusPublisher | None = getattr(request.app.state, "status_publisher", None)
    if found is None:
        found = request.app.state.status_publisher = StatusPublisher()
    return found
