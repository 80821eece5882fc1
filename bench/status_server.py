"""Real Blacksmith Mini apps serving synthetic views of N VMs (for the load benchmarks).

``python bench/status_server.py --vms 1000 --port 8800 --republish-hz 5`` starts the real app
factory on the embedded defaults, stops its loop, and publishes a synthetic view of N VMs and
N/2 queued jobs ``--republish-hz`` times a second (so the event stream has work to push).

``serve_changing`` (``bench/event_stream_bench.py``'s server) serves the app over a ``World``
that changes a little at each step, published on demand through the routes of ``bench_api``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import synthetic
import uvicorn
from fastapi import FastAPI, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app
from blacksmith_mini.api.routes.status import RenderedStatus
from blacksmith_mini.control import view as view_mod
from blacksmith_mini.domain import demand, model


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
    state: dict[str, Any] = {"version": 1000, "base": None}

    def publish() -> int:
        loop = app.state.runtime.loop
        if state["base"] is None:
            state["base"] = loop.view
        state["version"] += 1
        now = time.time()
        loop.view = world.view(state["base"], version=state["version"], now=now)
        for subscriber in list(loop._subscribers):
            subscriber.set()
        return int(state["version"])

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


async def serve_changing(port: int, vms: int) -> None:
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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--port", type=int, default=8800)
    parser.add_argument("--republish-hz", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_mod.load(simulate=True, data_dir=data_dir)
        settings.simulator.rate_per_min = 0
        settings.server.port = args.port
        app = create_app(settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        loop = app.state.runtime.loop
        loop._task.cancel()  # the synthetic view replaces the real loop's
        snapshot, policy, _ = synthetic.world(jobs=args.vms // 2, vms=args.vms)
        base = dataclasses.replace(
            loop.view,
            policy=policy,
            vms=snapshot.vms,
            open_jobs=snapshot.jobs,
            pids={vm.vm_id: vm.pid for vm in snapshot.vms if vm.pid},
        )
        version = 1000
        print("ready", flush=True)
        with contextlib.suppress(asyncio.CancelledError):
            while not serving.done():
                version += 1
                now = time.time()
                loop.view = dataclasses.replace(
                    base,
                    version=version,
                    content_version=version,
                    at=now,
                    loop=view_mod.LoopHealth(started_at=now, last_tick_at=now, ticks=version),
                )
                for subscriber in list(loop._subscribers):
                    subscriber.set()
                await asyncio.sleep(1.0 / args.republish_hz)


if __name__ == "__main__":
    asyncio.run(main())
