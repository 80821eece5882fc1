"""The event stream's deltas: the differ (tables), the publisher (a property over random views
rendered as ``GET /api/status`` renders them), and ``GET /api/events`` end to end (snapshot,
deltas, resume with ``Last-Event-ID``, snapshot when too far behind), driven with hand-made
views on the app's loop (its own task stopped)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx2
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api import status_delta
from blacksmith_mini.api.app import create_app
from blacksmith_mini.api.routes import events
from blacksmith_mini.api.stream_publisher import Delta, Frame, StatusPublisher
from blacksmith_mini.control import view as view_mod
from blacksmith_mini.domain import labels, model

# --- the differ --------------------------------------------------------------------------------


def vm(vm_id: int, **changes: Any) -> dict[str, Any]:
    found = {"vm_id": vm_id, "status": "idle", "job_id": None, "labels": ["x64"], "uptime": 1}
    return found | changes


def status(*, vms: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "snapshot_version": 1, "timestamp": "t0", "metrics": {"spawn": None},
        "vms": [vm(1), vm(2)] if vms is None else vms,
        "queued_jobs": [{"id": 5, "status": "queued"}], "running_jobs": [], "unmatched_jobs": [],
        "pools": [{"name": "default", "queued_jobs": 1}],
    }  # fmt: skip
    return found | fields


def vms(**change: Any) -> dict[str, Any]:
    return {"vms": {"key": "vm_id", **change}}


# name: (what differs in the new status, the delta's fields, its collections); old: status()
BUSY = [vm(1), vm(2, status="busy", job_id=5)]
LARGE = [vm(1, labels=["x64", "large"]), vm(2)]
TOP = {"timestamp": "t1", "snapshot_version": 2, "metrics": {"spawn": 1.5}}
TWINS, PARTIAL = [vm(1), vm(1, status="busy")], [{"vm_id": 1}, vm(2)]
RUNNING = [{"id": 5, "status": "in_progress"}]
POOLS = [{"name": "default", "queued_jobs": 0}]
CASES = {
    "no change": ({}, {}, {}),
    "a new VM": ({"vms": [vm(1), vm(2), vm(3)]}, {}, vms(upsert=[vm(3)])),
    "a VM gone": ({"vms": [vm(2)]}, {}, vms(remove=[1])),
    "a VM changed": ({"vms": BUSY}, {}, vms(upsert=[{"vm_id": 2, "status": "busy", "job_id": 5}])),
    "nested: whole": ({"vms": LARGE}, {}, vms(upsert=[{"vm_id": 1, "labels": LARGE[0]["labels"]}])),
    "reordered": ({"vms": [vm(2), vm(1)]}, {}, vms(order=[2, 1])),
    "a job moved between lists": (
        {"queued_jobs": [], "running_jobs": RUNNING},
        {},
        {"queued_jobs": {"key": "id", "remove": [5]},
         "running_jobs": {"key": "id", "upsert": RUNNING}},
    ),
    "a pool by name": ({"pools": POOLS}, {}, {"pools": {"key": "name", "upsert": POOLS}}),
    "top-level fields replaced whole": (TOP, TOP, {}),
    "no identity: the list whole": ({"vms": TWINS}, {"vms": TWINS}, {}),
    "a member gone: the list whole": ({"vms": PARTIAL}, {"vms": PARTIAL}, {}),
}  # fmt: skip


@pytest.mark.parametrize(("change", "fields", "collections"), CASES.values(), ids=CASES)
def test_diff(change: Any, fields: Any, collections: Any) -> None:
    old, new = status(), status(**change)
    delta = status_delta.diff(old, new, from_version=1, to_version=1)
    assert delta == {"from": 1, "to": 1, "fields": fields, "collections": collections}
    assert status_delta.is_empty(delta) == (not fields and not collections)
    assert status_delta.apply(old, delta) == new


def test_apply_refuses_a_delta_from_another_version() -> None:
    delta = status_delta.diff(status(), status(snapshot_version=3), from_version=2, to_version=3)
    with pytest.raises(status_delta.StaleDelta):
        status_delta.apply(status(), delta)


POOL = model.Pool(name="default", labels=labels.normalize(["self-hosted", "linux", "x64"]))


def machine(vm_id: int, state: model.VmState, pool: model.Pool = POOL) -> model.Vm:
    return model.Vm(
        vm_id=vm_id, name=f"bm-{vm_id}", pool=pool.name, scope="acme/app",
        labels=pool.registration_labels(), vcpus=2, memory_mib=4096, state=state,
        state_since=1000.0 + vm_id, created_at=900.0 + vm_id / 3,
    )  # fmt: skip


def world(version: int, vms: list[tuple[int, model.VmState]], jobs: list[int]) -> view_mod.View:
    """A view of those VMs and jobs (even ids queued, odd ones running), its clock moving."""
    return view_mod.View(
        version=version, content_version=version, at=1000.0 + version * 0.37,
        policy=model.Policy(max_vms=20, pools=(POOL,), scopes=("acme/app",)),
        vms=tuple(machine(i, state) for i, state in vms), recent_jobs=(), unmatched={},
        open_jobs=tuple(
            model.Job(id=j, run_id=j, repository="acme/app", labels=("self-hosted", "linux"),
                      status=model.JobStatus.IN_PROGRESS if j % 2 else model.JobStatus.QUEUED,
                      created_at=900.0 + j)
            for j in jobs
        ),
        waiting={}, pids={}, github=view_mod.GitHubHealth(), completed_jobs_total=version,
        rates=view_mod.Rates(spawn_rate_per_min=None, death_rate_per_min=None,
                             pool_saturation_percent=5.0 * len(vms), success_rate_percent=None),
        loop=view_mod.LoopHealth(started_at=0.0, ticks=version), driver="fake", simulate=True,
    )  # fmt: skip


STATES = [model.VmState.BOOTING, model.VmState.IDLE, model.VmState.BUSY, model.VmState.GONE]
vm_sets = st.lists(st.tuples(st.integers(1, 12), st.sampled_from(STATES)), unique_by=lambda v: v[0])
job_sets = st.lists(st.integers(1, 8), unique=True, max_size=6)


@given(st.lists(st.tuples(vm_sets, job_sets), min_size=1, max_size=6))
def test_the_published_deltas_rebuild_each_rendered_status(steps: list[Any]) -> None:
    """Random VMs (in any order) and jobs, rendered as ``GET /api/status`` renders them."""
    loop = types.SimpleNamespace(is_stuck=lambda at: False)
    publisher, held = StatusPublisher(), None
    for version, (vms, jobs) in enumerate(steps, start=1):
        loop.view = world(version, vms, jobs)
        frame = publisher.latest(types.SimpleNamespace(loop=loop))  # type: ignore[arg-type]
        assert frame.status == json.loads(frame.snapshot)
        held = held or json.loads(frame.snapshot)
        missing = publisher.since(held["snapshot_version"])
        assert missing is not None
        for delta in missing:
            held = status_delta.apply(held, json.loads(delta.data))
        assert held == json.loads(frame.snapshot)


# --- the stream, end to end ---------------------------------------------------------------------


@dataclasses.dataclass
class Event:
    event: str | None = None
    data: str = ""
    id: str | None = None
    comment: str | None = None


class Stream:
    """The events of one ``GET /api/events`` as they arrive."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.events: list[Event] = []
        self._buffer = ""
        self._read = 0
        self._arrived = anyio.Event()

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk.decode()
        while "\n\n" in self._buffer:
            block, self._buffer = self._buffer.split("\n\n", 1)
            found = Event()
            for line in block.split("\n"):
                name, _, value = line.partition(": ")
                if name == "":
                    found.comment = value
                elif name in ("event", "data", "id"):
                    setattr(found, name, value)
            self.events.append(found)
        self._arrived.set()

    async def _until(self, ready: Callable[[], bool]) -> None:
        with anyio.fail_after(10):
            while not ready():
                self._arrived = anyio.Event()
                await self._arrived.wait()

    async def answered(self) -> int | None:
        """The response's status code, once it came."""
        await self._until(lambda: self.status is not None)
        return self.status

    async def next(self, *, comments: bool = False) -> Event:
        """The next event (not comments, unless asked), waiting for it."""
        while True:
            await self._until(lambda: self._read < len(self.events))
            self._read += 1
            if comments or self.events[self._read - 1].comment is None:
                return self.events[self._read - 1]


@contextlib.asynccontextmanager
async def sse(app: FastAPI, target: str = "/api/events", **headers: str) -> AsyncIterator[Stream]:
    """``GET target`` on the app, read as it streams (httpx2's ASGI transport buffers it)."""
    stream, gone = Stream(), anyio.Event()
    path, _, query = target.partition("?")
    request = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if request:
            return request.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        stream.status = message.get("status", stream.status)
        stream.feed(message.get("body", b""))

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("testserver", 80), "client": ("127.0.0.1", 1),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    async with anyio.create_task_group() as group:
        group.start_soon(app, scope, receive, send)
        try:
            yield stream
        finally:
            gone.set()
            group.cancel_scope.cancel()


class Views:
    """Publishes hand-made views on the app's loop, as its ticks would."""

    def __init__(self, app: FastAPI) -> None:
        self.loop = app.state.runtime.loop
        self.pool = self.loop.view.policy.pools[0]

    @classmethod
    async def take(cls, app: FastAPI) -> Views:
        """Stop the app's loop (its own views would race these) and take over."""
        views = cls(app)
        views.loop._task.cancel()
        with contextlib.suppress(BaseException):
            await views.loop._task
        return views

    def publish(self, *vm_ids: int, busy: tuple[int, ...] = ()) -> int:
        view = self.loop.view
        idle, working = model.VmState.IDLE, model.VmState.BUSY
        vms = tuple(machine(i, working if i in busy else idle, self.pool) for i in vm_ids)
        version, content = view.version + 1, view.content_version + 1
        self.loop.view = dataclasses.replace(
            view, version=version, content_version=content, at=view.at + 0.5, vms=vms
        )
        for subscriber in list(self.loop._subscribers):
            subscriber.set()
        return int(version)


async def current_status(app: FastAPI) -> dict[str, Any]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        found: dict[str, Any] = (await client.get("/api/status")).json()
        return found


@pytest.fixture(autouse=True)
def no_coalescing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "COALESCE_SECONDS", 0.0)


async def arrives(watcher: Stream, version: int) -> Event:
    """The delta to ``version``, as ``watcher`` gets it (and so the ring holds it)."""
    event = await watcher.next()
    assert (event.event, event.id) == ("delta", str(version))
    return event


@pytest.mark.anyio
async def test_deltas_applied_to_the_snapshot_give_exactly_the_status(app: FastAPI) -> None:
    views = await Views.take(app)
    first = views.publish(1, 2, 3)
    async with sse(app) as stream:
        snapshot = await stream.next()
        assert (stream.status, snapshot.event, snapshot.id) == (200, "snapshot", str(first))
        held = json.loads(snapshot.data)
        assert held == await current_status(app)
        # a VM changed, a new one, two gone, reordered
        for ids, busy in [((1, 2, 3), (2,)), ((1, 2, 3, 4), (2,)), ((3, 4), ()), ((4, 3), ())]:
            version = views.publish(*ids, busy=busy)
            event = await arrives(stream, version)
            held = status_delta.apply(held, json.loads(event.data))
            assert held == await current_status(app)
            assert held["snapshot_version"] == version
        assert [v["vm_id"] for v in held["vms"]] == [4, 3]
        assert len(event.data) < len(snapshot.data) / 2
    assert views.loop._subscribers == []  # a client gone is no longer woken


@pytest.mark.anyio
async def test_resume_inside_the_ring_sends_only_the_missing_deltas(app: FastAPI) -> None:
    views = await Views.take(app)
    first = views.publish(1, 2)
    async with sse(app) as watcher:
        await watcher.next()
        async with sse(app) as early:
            held = json.loads((await early.next()).data)
        missed = []
        for ids, busy in [((1, 2), (1,)), ((2, 5), ())]:
            missed.append(views.publish(*ids, busy=busy))
            await arrives(watcher, missed[-1])
        async with sse(app, last_event_id=str(first)) as resumed:
            for version in missed:
                held = status_delta.apply(held, json.loads((await arrives(resumed, version)).data))
            assert held == await current_status(app)
            await arrives(resumed, views.publish(2, 5, 6))  # and then nothing but the next change


@pytest.mark.anyio
async def test_resume_by_query_and_when_up_to_date(app: FastAPI) -> None:
    views = await Views.take(app)
    first = views.publish(1)
    async with sse(app) as watcher:
        await watcher.next()
        second = views.publish(1, 2)
        await arrives(watcher, second)
        async with sse(app, f"/api/events?last_event_id={first}") as by_query:
            await arrives(by_query, second)
        async with sse(app, last_event_id=str(second)) as current:
            event = await arrives(current, views.publish(2))  # no snapshot: it had the latest
            assert json.loads(event.data)["from"] == second


@pytest.mark.anyio
@pytest.mark.parametrize("last", ["first", "unknown", "not a number"])
async def test_too_far_behind_or_unknown_gets_a_snapshot(app: FastAPI, last: str) -> None:
    app.state.status_publisher = StatusPublisher(max_deltas=2)
    views = await Views.take(app)
    first = views.publish(1)
    async with sse(app) as watcher:
        await watcher.next()
        for ids in [(1, 2), (2,), (3,)]:
            latest = views.publish(*ids)
            await arrives(watcher, latest)
        given_id = {"first": str(first), "unknown": "999999", "not a number": "x"}[last]
        async with sse(app, last_event_id=given_id) as resumed:
            event = await resumed.next()
    assert (event.event, event.id) == ("snapshot", str(latest))
    assert json.loads(event.data) == await current_status(app)


def test_a_client_with_more_to_catch_up_than_a_snapshot_gets_the_snapshot() -> None:
    frame = Frame({}, version=9, content_version=9)
    frame.snapshot = "{}" * 10  # a status of 20 bytes

    class Behind(StatusPublisher):
        def since(self, version: int) -> list[Delta] | None:
            return [Delta(v, v + 1, "x" * 8) for v in range(version, 9)]

    def kinds(held: int) -> list[str]:
        return [e.split(b"\n")[0].decode() for e in events._catch_up(Behind(), frame, held)]

    assert kinds(8) == ["event: delta"]
    assert kinds(7) == ["event: delta", "event: delta"]
    assert kinds(6) == ["event: snapshot"]  # 24 bytes of deltas


@pytest.mark.anyio
async def test_a_quiet_stream_sends_a_heartbeat_comment(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.01)
    views = await Views.take(app)
    views.publish(1)
    async with sse(app) as stream:
        assert (await stream.next()).event == "snapshot"
        assert (await stream.next(comments=True)).comment == "heartbeat"


@pytest.mark.anyio
async def test_the_stream_takes_its_token_by_query(tmp_path: pathlib.Path) -> None:
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.server.api_token = SecretStr("read-token")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with sse(app) as refused:
            assert await refused.answered() == 401
        async with sse(app, "/api/events?access_token=read-token") as stream:
            assert (await stream.next()).event == "snapshot"
