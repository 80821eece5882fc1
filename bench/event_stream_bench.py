"""Benchmark of ``GET /api/events`` (per-entity deltas): 100 clients, 1,000 VMs, 5 changes/s.

Serves the real app (``create_app`` on the embedded defaults, its loop stopped, on uvloop as
uvicorn runs it) in a child process (this file with ``--serve``, as ``load_bench.py`` does with
``status_server.py``) on a free loopback port, over a synthetic world of 1,000 VMs and 500 open
jobs whose view changes 5 times a second: three VMs change state, one is gone and one is new,
a queued job starts, a running one ends, a job is queued, and the VMs' uptimes move with the
clock. From this process, 100 SSE clients (httpx2) read the stream for 20 s. It prints:

- p50 and p99 of publication to arrival: the changer stamps each view's ``loop.last_tick_at``
  with the time it publishes it (epoch seconds, the host's one clock); deltas carry it;
- the mean bytes of a delta event (its data) against the full status, as a ratio;
- whether one client's deltas, applied to its snapshot, give exactly ``GET /api/status``;
- the server's full garbage collections meanwhile (each pause delays every client at once);
- then 5 s of the previous full-resend stream (a copy of the old route, at
  ``/bench/full-events``; ``--no-full`` skips it), and 10 s of deltas after ``gc.freeze()`` in
  the server (what the app could do once started: full collections then skip those objects).

Run: ``uv run python bench/event_stream_bench.py`` (about a minute on 2 cores). Bounded: fixed
numbers of changes and clients, a deadline on every phase; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx2
import synthetic
import uvicorn
from common import free_port, pct
from fastapi import FastAPI, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api import status_delta
from blacksmith_mini.api.app import create_app
from blacksmith_mini.api.routes.status import RenderedStatus
from blacksmith_mini.control import view as view_mod
from blacksmith_mini.domain import demand, model

STAMP = b'"last_tick_at":'

# --- the server (child process) ------------------------------------------------------------------


class World:
    """The synthetic VMs and jobs, changed a little at each step."""

    def __init__(self, *, vms: int, seed: int = 7) -> None:
        snapshot, self.policy, _ = synthetic.world(jobs=vms // 2, vms=vms, seed=seed)
        self.rng = random.Random(seed)
        now = time.time()
        age = self.rng.uniform  # varied ages: uptimes do not all tick over together
        self.vms = {
            vm.vm_id: dataclasses.replace(
                vm, created_at=now - age(60, 3600), state_since=now - age(0, 60)
            )
            for vm in snapshot.vms
        }
        self.jobs = {j.id: dataclasses.replace(j, created_at=now - j.id) for j in snapshot.jobs}
        self.next_vm, self.next_job = max(self.vms) + 1, max(self.jobs) + 1
        self.started = now

    def step(self, now: float) -> None:
        for vm_id in self.rng.sample(list(self.vms), 3):
            vm = self.vms[vm_id]
            busy = vm.state is not model.VmState.BUSY
            state = model.VmState.BUSY if busy else model.VmState.IDLE
            job = self.next_job if busy else None
            self.vms[vm_id] = dataclasses.replace(vm, state=state, state_since=now, job_id=job)
        del self.vms[min(self.vms)]
        template = self.vms[max(self.vms)]
        self.vms[self.next_vm] = dataclasses.replace(
            template, vm_id=self.next_vm, name=f"bm-{self.next_vm}-x",
            state=model.VmState.BOOTING, state_since=now, created_at=now,
        )  # fmt: skip
        self.next_vm += 1
        queued = [j for j in self.jobs.values() if j.status is model.JobStatus.QUEUED]
        running = [j for j in self.jobs.values() if j.status is model.JobStatus.IN_PROGRESS]
        if running:
            del self.jobs[running[0].id]
        if queued:
            self.jobs[queued[0].id] = dataclasses.replace(
                queued[0], status=model.JobStatus.IN_PROGRESS, started_at=now
            )
        self.jobs[self.next_job] = dataclasses.replace(queued[-1], id=self.next_job, created_at=now)
        self.next_job += 1

    def view(self, base: view_mod.View, *, version: int, now: float) -> view_mod.View:
        jobs = tuple(self.jobs.values())
        pools_of: dict[int, str | None] = {}
        unmatched: dict[int, str] = {}
        for job_id, found in demand.match_all(jobs, self.policy.pools).items():
            pools_of[job_id] = found.pool.name if found.pool else None
            reason = demand.unmatched_reason(self.jobs[job_id], self.policy, found)
            if reason:
                unmatched[job_id] = reason
        return dataclasses.replace(
            base, version=version, content_version=version, at=now, policy=self.policy,
            vms=tuple(self.vms.values()), open_jobs=jobs, pools_of=pools_of, unmatched=unmatched,
            pids={vm.vm_id: vm.pid for vm in self.vms.values() if vm.pid},
            loop=view_mod.LoopHealth(started_at=self.started, last_tick_at=now, ticks=version),
        )  # fmt: skip


class Pauses(list[float]):
    """Full garbage collections, seconds each (a ``gc.callbacks`` entry)."""

    started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif info["generation"] == 2:
            self.append(time.perf_counter() - self.started)


def bench_api(app: FastAPI, world: World) -> FastAPI:
    """The bench's routes: ``/bench/run`` (publish N changes at H Hz), ``/bench/full-events``
    (the old stream), ``/bench/gc`` (the full collections of the run) and ``/bench/gc-freeze``."""
    api = FastAPI()
    rendered = RenderedStatus()
    state = {"version": 1000, "base": None}

    def publish() -> int:
        loop = app.state.runtime.loop
        if state["base"] is None:
            state["base"] = loop.view
        state["version"] += 1
        now = time.time()
        loop.view = world.view(state["base"], version=state["version"], now=now)
        for subscriber in list(loop._subscribers):
            subscriber.set()
        return state["version"]

    async def run(changes: int, hz: float) -> None:
        for _ in range(changes):
            await asyncio.sleep(1.0 / hz)
            world.step(time.time())
            publish()

    api.state.publish = publish
    pauses = Pauses()
    gc.callbacks.append(pauses)

    @api.get("/bench/gc")
    async def full_collections() -> dict[str, float]:
        found = {"count": len(pauses), "longest_ms": max(pauses, default=0.0) * 1000}
        pauses.clear()
        return found

    @api.post("/bench/gc-freeze")
    async def freeze() -> None:
        """What the app could do after start-up: keep what exists out of every collection."""
        gc.collect()
        gc.freeze()

    @api.post("/bench/run")
    async def start(changes: int, hz: float) -> dict[str, int]:
        last = state["version"] + changes
        pauses.clear()
        api.state.task = asyncio.create_task(run(changes, hz))
        return {"last": last}

    @api.get("/bench/idle")
    async def idle() -> bool:
        """Whether every stream of the last phase is gone (nothing left to wake)."""
        return not app.state.runtime.loop._subscribers

    @api.get("/bench/full-events", response_class=EventSourceResponse)
    async def full_events(request: Request) -> AsyncIterator[ServerSentEvent]:
        """The previous ``GET /api/events``: the whole status on every change, coalesced."""
        runtime = app.state.runtime
        changed = runtime.loop.subscribe()
        try:
            sent = -1
            while True:
                status = rendered.get(runtime)
                if status.content_version != sent:
                    sent = status.content_version
                    yield ServerSentEvent(
                        raw_data=status.plain.decode(), event="status", id=str(status.version)
                    )
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=5.0)
                if await request.is_disconnected():
                    return
                await asyncio.sleep(0.5 if len(status.plain) > 128 * 1024 else 0.1)
        finally:
            runtime.loop.unsubscribe(changed)

    return api


async def serve(port: int, vms: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_mod.load(simulate=True, data_dir=data_dir)
        settings.simulator.rate_per_min = 0
        settings.server.port = port
        app = create_app(settings)
        extra = bench_api(app, World(vms=vms))

        async def combined(scope: Any, receive: Any, send: Any) -> None:
            target = extra if scope.get("path", "").startswith("/bench/") else app
            await target(scope, receive, send)

        config = uvicorn.Config(combined, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        app.state.runtime.loop._task.cancel()  # the synthetic views replace the loop's
        extra.state.publish()
        print("ready", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            await serving


# --- the clients (this process) ------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    delays: list[float] = dataclasses.field(default_factory=list)
    sizes: list[int] = dataclasses.field(default_factory=list)
    snapshot_bytes: int = 0
    resyncs: int = 0  # snapshots after the first
    errors: int = 0
    reproduces: bool | None = None  # the first client's state is GET /api/status's
    collections: dict[str, float] = dataclasses.field(default_factory=dict)  # the server's


async def events(response: httpx2.Response) -> AsyncIterator[tuple[bytes, int, bytes]]:
    """(event, id, data) of each event as it arrives (bytes: cheap for 100 clients)."""
    buffer = bytearray()
    async for chunk in response.aiter_raw():
        buffer += chunk
        while (end := buffer.find(b"\n\n")) >= 0:
            fields = dict(line.split(b": ", 1) for line in bytes(buffer[:end]).split(b"\n"))
            del buffer[: end + 2]
            if b"event" in fields:
                yield fields[b"event"], int(fields[b"id"]), fields[b"data"]


async def client(
    http: httpx2.AsyncClient,
    path: str,
    *,
    tally: Tally,
    ready: asyncio.Barrier,
    last: asyncio.Future[int],
    keep: bool = False,
) -> dict[str, Any] | None:
    """Read ``path`` until the last change; with ``keep``, return the state its events built."""
    held: dict[str, Any] | None = None
    try:
        async with http.stream("GET", path) as response:
            first = True
            async for name, ident, data in events(response):
                now = time.time()
                if first:
                    tally.snapshot_bytes, first = len(data), False
                    held = json.loads(data) if keep and name == b"snapshot" else None
                    await ready.wait()
                    continue
                at = data.find(STAMP) + len(STAMP)  # the publication time, without parsing
                tally.delays.append(now - float(data[at : data.index(b",", at)]))
                tally.resyncs += name == b"snapshot"
                if keep and name == b"delta" and held is not None:
                    held = status_delta.apply(held, json.loads(data))
                elif keep:
                    held = json.loads(data) if name == b"snapshot" else None
                tally.sizes.append(len(data))
                if last.done() and ident >= last.result():
                    return held
    except Exception:
        tally.errors += 1
    return None


async def phase(base: str, path: str, *, clients: int, changes: int, hz: float) -> Tally:
    tally = Tally()
    ready = asyncio.Barrier(clients + 1)
    last: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    limits = httpx2.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx2.AsyncClient(base_url=base, timeout=None, limits=limits) as http:
        async with asyncio.timeout(30):  # the last phase's streams are gone
            while not (await http.get("/bench/idle")).json():
                await asyncio.sleep(0.05)
        tasks = [
            asyncio.create_task(
                client(http, path, tally=tally, ready=ready, last=last, keep=i == 0)
            )
            for i in range(clients)
        ]
        async with asyncio.timeout(60):
            await ready.wait()  # every client has its first event
        answer = await http.post("/bench/run", params={"changes": changes, "hz": hz})
        last.set_result(answer.json()["last"])
        async with asyncio.timeout(changes / hz + 30):
            states = await asyncio.gather(*tasks)
        if path == "/api/events":
            tally.reproduces = states[0] == (await http.get("/api/status")).json()
        tally.collections = (await http.get("/bench/gc")).json()
    return tally


def report(title: str, tally: Tally, *, clients: int) -> None:
    mean = statistics.fmean(tally.sizes) if tally.sizes else float("nan")
    full = tally.collections
    print(title)
    print(f"  events received            {len(tally.sizes)} ({clients} clients)")
    print(f"  publication to arrival     p50 {pct(tally.delays, 0.5) * 1000:.1f} ms, "
          f"p99 {pct(tally.delays, 0.99) * 1000:.1f} ms")  # fmt: skip
    print(f"  bytes per event            {mean:,.0f} of a full status of "
          f"{tally.snapshot_bytes:,}: {mean / tally.snapshot_bytes:.2%}")  # fmt: skip
    print(f"  resyncs {tally.resyncs}, errors {tally.errors}; server's full garbage collections "
          f"{full.get('count', 0):.0f}, longest {full.get('longest_ms', 0):.0f} ms")  # fmt: skip
    if tally.reproduces is not None:
        same = "yes" if tally.reproduces else "NO"
        print(f"  one client's snapshot + deltas == GET /api/status at the end: {same}")


async def measure(base: str, *, clients: int, seconds: float, hz: float, full: bool) -> None:
    changes = round(seconds * hz)
    title = f"GET /api/events (deltas), {changes} changes at {hz:g}/s"
    deltas = await phase(base, "/api/events", clients=clients, changes=changes, hz=hz)
    report(title, deltas, clients=clients)
    if full:
        few = round(5 * hz)
        old = await phase(base, "/bench/full-events", clients=clients, changes=few, hz=hz)
        report(f"previous full resend, {few} changes at {hz:g}/s", old, clients=clients)
    async with httpx2.AsyncClient(base_url=base) as http:
        await http.post("/bench/gc-freeze")
    few = changes // 2
    frozen = await phase(base, "/api/events", clients=clients, changes=few, hz=hz)
    title = f"GET /api/events (deltas), {few} changes at {hz:g}/s, after gc.freeze()"
    report(title, frozen, clients=clients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hz", type=float, default=5.0)
    parser.add_argument("--no-full", action="store_true", help="skip the old full-resend run")
    args = parser.parse_args()
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):  # uvloop, as uvicorn runs the real server
        import uvloop

        run = uvloop.run
    if args.serve:
        run(serve(args.port, args.vms))
        return
    port = free_port()
    command = [sys.executable, __file__, "--serve", "--port", str(port), "--vms", str(args.vms)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.strip() == b"ready":
                break
        else:
            raise SystemExit("the benchmark server did not start")
        print(f"{args.vms} VMs, {args.vms // 2} open jobs, {args.clients} clients, loopback")
        options = {"clients": args.clients, "seconds": args.seconds, "hz": args.hz}
        run(measure(f"http://127.0.0.1:{port}", **options, full=not args.no_full))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
