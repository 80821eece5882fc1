"""The event stream's publisher: the latest status and a bounded ring of recent deltas, per app.

Each time the view's content changes, the first stream client to notice renders the status once
and computes the delta from the previous one once (``status_delta.diff``); every client then
sends the same bytes, already framed as server-sent events. The render is the JSON values of
``GET /api/status`` (``StatusRenderer``: each VM and job rendered by ``convert`` again only when
what it shows changed), serialized whole only when a client needs a snapshot. The ring keeps the
last ``MAX_DELTAS`` deltas (at most ``MAX_BYTES`` of them), so a client that reconnects with
``Last-Event-ID`` (or falls behind) catches up with just what it missed, or gets a snapshot
when the ring no longer reaches back to its version.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import threading
import time
from typing import Any

from fastapi import Request
from fastapi.sse import format_sse_event

from blacksmith_mini import collector
from blacksmith_mini.api import convert, status_delta
from blacksmith_mini.control import view as view_mod
from blacksmith_mini.domain import model
from blacksmith_mini.runtime import Runtime

MAX_DELTAS = 256
MAX_BYTES = 8 * 1024 * 1024


class Frame:
    """One published status: its JSON values (``GET /api/status``'s, read-only: consecutive
    frames share the entities that did not change), and its JSON and the ``event: snapshot``
    carrying it, both made on first use (most frames only ever go as deltas)."""

    def __init__(self, status: dict[str, Any], *, version: int, content_version: int) -> None:
        self.version = version
        self.content_version = content_version
        self.status = status
        self.published_at = time.monotonic()  # when it was rendered

    @functools.cached_property
    def snapshot(self) -> str:
        """The status as JSON (the same values as ``GET /api/status``'s body)."""
        return _dumps(self.status)

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
        self._renderer = StatusRenderer()

    def latest(self, runtime: Runtime) -> Frame:
        """The frame of the current view, rendered (and its delta computed) on first ask."""
        view = runtime.loop.view
        latest = self._latest
        if latest is not None and latest.content_version == view.content_version:
            return latest
        with self._lock, collector.paused():
            latest = self._latest
            if latest is not None and latest.content_version == view.content_version:
                return latest
            rendered = self._renderer.render(view, stuck=runtime.loop.is_stuck(view.at))
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


@dataclasses.dataclass(slots=True)
class _Rendered:
    """One entity's JSON, with what it was rendered from."""

    source: model.Vm | model.Job
    inputs: tuple[object, ...]  # the rest of what ``convert`` made it from
    value: dict[str, Any]

    def holds(self, source: model.Vm | model.Job, inputs: tuple[object, ...]) -> bool:
        return self.inputs == inputs and (self.source is source or self.source == source)


_UNSET = object()


class StatusRenderer:
    """``convert.status(view).model_dump(mode="json")``, at a fraction of its cost: a VM or a
    job is rendered by ``convert.vm_out`` or ``convert.job_out`` again only when it or what
    else its rendering reads changed (at 1,000 VMs most are as they were, and pydantic was most
    of a frame's time); the rest is ``convert.status`` of the view without them, its counts
    then filled in. The values it returns are shared with the next render: read-only."""

    def __init__(self) -> None:
        self._policy: model.Policy | None = None
        self._vms: dict[int, _Rendered] = {}
        self._jobs: dict[int, _Rendered] = {}

    def render(self, view: view_mod.View, *, stuck: bool) -> dict[str, Any]:
        """The JSON values of ``GET /api/status`` for ``view``."""
        if view.policy is not self._policy and view.policy != self._policy:
            self._vms, self._jobs = {}, {}  # timeouts and pools go into every entity
        self._policy = view.policy
        bare = dataclasses.replace(view, vms=(), open_jobs=())
        status: dict[str, Any] = convert.status(bare, stuck=stuck).model_dump(mode="json")
        active = view.active_vms
        jobs = self._open_jobs(view)
        queued = [job for job in jobs if job["status"] == "queued"]
        per_pool: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        for vm in active:
            per_pool[vm.pool][vm.state.value] += 1
        queued_per_pool = collections.Counter(job["pool"] for job in queued if job["pool"])
        idle = convert.idle_minutes(view)
        for pool in status["pools"]:
            pool["queued_jobs"] = queued_per_pool.get(pool["name"], 0)
            pool["vms_by_status"] = dict(per_pool.get(pool["name"], {}))
            pool["idle_vm_minutes_last_hour"] = idle.get(pool["name"], 0.0)
        status.update(
            active_vms_count=len(active),
            queued_jobs_count=len(queued),
            vms=self._active_vms(view, active),
            queued_jobs=queued,
            running_jobs=[job for job in jobs if job["status"] != "queued"],
            unmatched_jobs=[job for job in queued if job["unmatched_reason"]],
        )
        return status

    def _active_vms(
        self, view: view_mod.View, active: tuple[model.Vm, ...]
    ) -> list[dict[str, Any]]:
        kept, fresh, now, values = self._vms, {}, view.at, []
        for vm in active:
            pid, kept_until = view.pids.get(vm.vm_id), view.kept.get(vm.vm_id)
            end = vm.ended_at if vm.ended_at is not None else now
            uptime = max(0, int(end - vm.created_at))  # the clock, as ``convert.vm_out`` shows it
            found = kept.get(vm.vm_id)
            if found is None or not found.holds(vm, (pid, kept_until)):
                out = convert.vm_out(
                    vm, now=now, policy=view.policy, pid=pid, kept_until=kept_until
                )
                found = _Rendered(vm, (pid, kept_until), out.model_dump(mode="json"))
            elif found.value["uptime_seconds"] != uptime:  # only the clock moved
                found = _Rendered(vm, found.inputs, {**found.value, "uptime_seconds": uptime})
            fresh[vm.vm_id] = found
            values.append(found.value)
        self._vms = fresh
        return values

    def _open_jobs(self, view: view_mod.View) -> list[dict[str, Any]]:
        kept, fresh, values = self._jobs, {}, []
        for job in view.open_jobs:
            waiting = view.waiting.get(job.id)
            inputs = (waiting, view.pools_of.get(job.id, _UNSET), view.unmatched.get(job.id))
            found = kept.get(job.id)
            if found is None or not found.holds(job, inputs):
                out = convert.job_out(job, policy=view.policy, waiting=waiting, view=view)
                found = _Rendered(job, inputs, out.model_dump(mode="json"))
            fresh[job.id] = found
            values.append(found.value)
        self._jobs = fresh
        return values


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def status_publisher(request: Request) -> StatusPublisher:
    """The app's own publisher (one per app: view versions of different apps are unrelated)."""
    found: StatusPublisher | None = getattr(request.app.state, "status_publisher", None)
    if found is None:
        found = request.app.state.status_publisher = StatusPublisher()
    return found
