"""Heartbeats: the control plane's CPU for agent reports (``POST /api/agent/report``).

The real app (``create_app``, ``vm.driver = "remote"``, simulated GitHub idle) runs in process
with its lifespan, on a store seeded before it starts: 100 hosts (``add_host``), 10,000 busy
VMs spread over them (a steady fleet: nothing for the loop to start or stop), each host's
agent's ``hello`` with its VMs (so the loop adopts them, as after a restart). Reports are
what agents send while their VMs change (``hosts_churn``: 8 of a host's 100 observations
change between two of its reports), made beforehand, through the real route. Two measures:

- the route alone: the loop's lock is held, ``time.process_time`` over N reports (ASGI
  transport). CPU share = CPU per report x 100 hosts / 5 s. Reports are sent as many at
  once as arrive within a group write's window at the real pace (``store/beatgroup.py``:
  5 in 0.25 s), one group after another, so the store's memory of heartbeats
  (``store/beatcache.py``) runs on a paced clock: 5 s
  per host between its reports, the default lease's refresh (12 s: a host is checked
  against the database every third report), the pending stamps written every second of
  it; N covers whole refresh periods after as many unmeasured reports, so the share is the
  steady state's. On PostgreSQL the database server's CPU (the bench's backends, found by
  ``application_name``) is added. Three rows, one per shape of report: nothing new (bare),
  the 8 changes (protocol 2, the target's row), the observations whole with the 8 changes
  (protocol 1, for comparison: what every changed report cost before protocol 2).
- the loop running (``hosts_live``): the app served by uvicorn, the agents in a process of
  their own sending protocol-2 reports over HTTP at the real rate (100 hosts every 5 s, 20
  a second), windows of that against windows with no reports (alternated); the control
  plane's own CPU in each (the agents' is another process's). The loop's ticks over 10,000
  VMs and the simulated GitHub cost the same with no reports at all, so the row "reports'
  own" (with less without) is what the reports add: HTTP parsing, the writes, and the
  loop's work of reading the changed hosts again. The changes are ones the planner does not
  read (``hosts_churn`` says why), so they do not wake the loop. The VMs are all busy
  because idle ones with no queued job would be scaled down, in bursts that land in
  whichever window is running: loop work that is not heartbeat handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import pathlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import hosts_churn
import hosts_live
import hosts_seed
import hosts_world
import httpx2

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app
from blacksmith_mini.domain import placement as pl
from blacksmith_mini.store import beatcache, beatgroup, repository

HOSTS, VMS, INTERVAL_SECONDS, TARGET_SHARE = 100, 10_000, 5.0, 0.05
WARMUP = 30
TOGETHER = round(beatgroup.WINDOW_SECONDS * HOSTS / INTERVAL_SECONDS)  # reports in a window
DEFAULT_LEASE_SECONDS = 15.0  # the bench's own lease is long: no host lapses while it waits
Bodies = list[tuple[dict[str, str], bytes]]


@dataclasses.dataclass(frozen=True)
class Result:
    """One way of reporting: per report, or (``live``) as a share of a window."""

    database: str
    what: str
    reports: int
    observations: int
    cpu_ms: float  # the control plane process, per report
    wall_ms: float
    db_cpu_ms: float | None  # PostgreSQL's backends, per report
    live_share: float | None = None  # of one core over the window, loop running
    ticks_per_second: float | None = None
    client_ms: float = 0.0  # of ``cpu_ms``, the in-process client's (an agent's, really)

    @property
    def net_ms(self) -> float:
        """The control plane's CPU per report: the client's taken out."""
        return self.cpu_ms - self.client_ms

    @property
    def share(self) -> float:
        """Of one core, at 100 hosts reporting every 5 s (database server included)."""
        if self.live_share is not None:
            return self.live_share
        return (self.net_ms + (self.db_cpu_ms or 0.0)) / 1000 * HOSTS / INTERVAL_SECONDS


@dataclasses.dataclass(frozen=True)
class Running:
    app: Any
    seeded: hosts_seed.Seeded
    hosts: list[pl.Host]
    backend_name: str | None  # PostgreSQL: the application_name of the bench's connections


@contextlib.asynccontextmanager
async def running_app(database: str) -> AsyncIterator[Running]:
    hosts = [dataclasses.replace(h, state=pl.HostState.UP) for h in hosts_world.hosts(HOSTS)]
    with tempfile.TemporaryDirectory(prefix="hosts-bench-") as tmp:
        settings = settings_mod.load(simulate=True, data_dir=pathlib.Path(tmp))
        settings.simulator.rate_per_min = 0
        settings.vm.driver = "remote"
        settings.github.poll_interval = settings.github.poll_interval_with_webhooks = 3600.0
        settings.hosts.lease_seconds = 600.0  # no host lapses while the bench holds the loop
        name: str | None = None
        async with contextlib.AsyncExitStack() as stack:
            if database == "postgresql":
                settings.database_url = hosts_seed.PG_URL
                name = f"hosts-bench-{uuid.uuid4().hex[:8]}"
                schema = await stack.enter_async_context(hosts_seed.pg_schema())
                stack.enter_context(hosts_seed.engines_in(schema, application_name=name))
            store = repository.Store(settings.resolved_database_url())
            await store.open()
            # Every VM busy: a steady fleet the loop has nothing to start or stop in, so what
            # the windows with and without reports differ by is the reports.
            seeded = await hosts_seed.seed(store, hosts=hosts, vms=VMS, now=time.time(), idle=False)
            await store.close()
            app = create_app(settings)
            with contextlib.redirect_stdout(io.StringIO()):  # "Control loop started"
                await stack.enter_async_context(app.router.lifespan_context(app))
            yield Running(app=app, seeded=seeded, hosts=hosts, backend_name=name)


SHAPES = (  # what each route row sends (``hosts_churn``)
    ("route, bare (protocol 2)", "bare"),
    (f"route, {hosts_churn.CHANGED_PER_REPORT} of 100 changed (protocol 2)", "delta"),
    (f"route, whole, {hosts_churn.CHANGED_PER_REPORT} changed (protocol 1)", "whole"),
)
LIVE_STEPS = 15  # reports per host made for the live windows (they send about 5)


async def measure(database: str, *, reports: int) -> list[Result]:
    async with running_app(database) as running:
        runtime = running.app.state.runtime
        runtime.store.heartbeat_refresh(0.8 * DEFAULT_LEASE_SECONDS)  # as in production
        transport = httpx2.ASGITransport(app=running.app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            await _until(lambda: runtime.loop.loop_health.ticks >= 2)  # adopted, settled
            name = running.backend_name
            pids = await hosts_seed.backends_named(name) if name else []
            live = _churn(running).bodies("delta", count=LIVE_STEPS * HOSTS)
            found = await _live(running, live, database=database, pids=pids)
            async with runtime.loop.lock:  # the loop's ticks wait: the route alone is measured
                churn = await _resync(client, running)
                steady = _steady_count(reports, runtime.store)
                for what, shape in SHAPES:
                    sent = churn.bodies(shape, count=2 * steady)
                    clock = PacedClock(runtime.store)
                    await _send(client, sent, range(steady), clock)  # memory as at the pace
                    cpu, wall, db = await _reports(
                        client, sent, start=steady, count=steady, pids=pids, clock=clock
                    )
                    clock.restore()
                    mine = await _client_side(sent[steady:], count=steady)
                    found.append(
                        Result(
                            database=database,
                            what=what,
                            reports=steady,
                            observations=_observations(sent[-1][1]),
                            cpu_ms=cpu,
                            wall_ms=wall,
                            db_cpu_ms=db if pids else None,
                            client_ms=mine,
                        )
                    )
                found.append(await _floor(client, count=reports, database=database))
                await _resync(client, running)  # every host's VMs back before the loop runs
    return found


def _churn(running: Running) -> hosts_churn.Churn:
    seeded = running.seeded
    return hosts_churn.Churn(seeded.observations, tokens=seeded.tokens, sessions=seeded.sessions)


async def _resync(client: httpx2.AsyncClient, running: Running) -> hosts_churn.Churn:
    """Every host's observations sent whole as seeded (the live windows changed them)."""
    churn = _churn(running)
    for name in churn.hosts:
        whole = list(churn.state[name].values())
        body = {"session": churn.sessions[name], "observations": whole, "base": None}
        answer = await client.post(
            "/api/agent/report", content=json.dumps(body), headers=churn.headers[name]
        )
        assert answer.json()["observed"] == churn.version[name], "the bench reckons otherwise"
    return churn


def _observations(body: bytes) -> int:
    found = json.loads(body)
    return len(found.get("observations") or found.get("changed") or [])


async def _live(
    running: Running, bodies: Bodies, *, database: str, pids: list[int]
) -> list[Result]:
    """The loop running, over HTTP with the agents in a process of their own (``hosts_live``):
    windows with no reports and with reports at the real rate; then what the reports add."""
    loop = running.app.state.runtime.loop
    quiet, busy = await hosts_live.measure(
        running.app, bodies=bodies, hosts=HOSTS, ticks=lambda: loop.loop_health.ticks, pids=pids
    )
    observations = _observations(bodies[0][1])
    found = [
        Result(
            database=database,
            what=what,
            reports=windows.reports,
            observations=observations if windows.reports else 0,
            cpu_ms=windows.cpu * 1000 / max(1, windows.reports),
            wall_ms=windows.wall * 1000 / max(1, windows.reports),
            db_cpu_ms=windows.db * 1000 / max(1, windows.reports) if pids else None,
            live_share=windows.share,
            ticks_per_second=windows.ticks / windows.wall,
        )
        for what, windows in (
            ("loop running, no reports", quiet),
            (f"loop running, {hosts_live.RATE:.0f} reports/s", busy),
        )
    ]
    extra = busy.share - quiet.share  # of one core, over the same time
    found.append(
        dataclasses.replace(
            found[1],
            what="loop running, reports' own",
            cpu_ms=extra * found[1].wall_ms,
            db_cpu_ms=None,
            live_share=extra,
            ticks_per_second=None,
        )
    )
    return found


async def _reports(
    client: httpx2.AsyncClient,
    bodies: Bodies,
    *,
    start: int = 0,
    count: int,
    pids: list[int],
    clock: PacedClock | None = None,
) -> tuple[float, float, float]:
    """CPU ms, wall ms and database-server CPU ms per report, over ``count`` reports."""
    db_before = hosts_seed.backend_cpu_seconds(pids)
    cpu, wall = time.process_time(), time.perf_counter()
    await _send(client, bodies, range(start, start + count), clock)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    db = hosts_seed.backend_cpu_seconds(pids) - db_before
    return cpu * 1000 / count, wall * 1000 / count, db * 1000 / count


def _steady_count(reports: int, store: Any) -> int:
    """Reports covering whole refresh periods of every host (at least ``reports``): in each,
    a host is checked against the database once and answered from memory otherwise."""
    per_period = int(store._beats.refresh_seconds // INTERVAL_SECONDS + 1) * HOSTS
    return max(1, -(-reports // per_period)) * per_period


class PacedClock:
    """The store's heartbeat memory's clock when reports are sent back to back: each report
    moves it by 5 s / 100 hosts, as if every host reported every 5 s (so memory answers a
    report only as often as it would at the real pace), and every second of it the pending
    stamps are written, as the runtime does."""

    def __init__(self, store: Any) -> None:
        self.store, self.now, self.flushed = store, 0.0, 0.0
        self.real = store._beats.clock
        store._beats.clock = self
        store._beats._known.clear()  # nothing remembered from before: build up at the pace

    def restore(self) -> None:
        self.store._beats.clock = self.real
        self.store._beats._known.clear()

    def __call__(self) -> float:
        return self.now

    async def advance(self) -> None:
        self.now += INTERVAL_SECONDS / HOSTS
        if self.now - self.flushed >= beatcache.FLUSH_SECONDS:
            self.flushed = self.now
            await self.store.flush_heartbeats()


async def _send(
    client: httpx2.AsyncClient, bodies: Bodies, indexes: range, clock: PacedClock | None
) -> None:
    """Reports ``indexes`` of ``bodies``, as many at once as arrive within a group write's
    window at the real pace (``beatgroup``: they are written together, as they would be)."""
    for first in range(indexes.start, indexes.stop, TOGETHER):
        group = range(first, min(first + TOGETHER, indexes.stop))
        await asyncio.gather(*(_report(client, bodies, index) for index in group))
        for _ in group:
            if clock is not None:
                await clock.advance()


async def _report(
    client: httpx2.AsyncClient, bodies: Bodies, index: int, clock: PacedClock | None = None
) -> None:
    headers, body = bodies[index % len(bodies)]
    answer = await client.post("/api/agent/report", content=body, headers=headers)
    assert answer.status_code == 200 and b'"resend"' not in answer.content, answer.text
    if clock is not None:
        await clock.advance()


async def _floor(client: httpx2.AsyncClient, *, count: int, database: str) -> Result:
    """The cheapest route (``GET /api/health``) through the same in-process transport."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        answer = await client.get("/api/health")
        assert answer.status_code in (200, 503), answer.text
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return Result(
        database=database,
        what="floor: GET /api/health",
        reports=count,
        observations=0,
        cpu_ms=cpu * 1000 / count,
        wall_ms=wall * 1000 / count,
        db_cpu_ms=None,
    )


async def _client_side(bodies: Bodies, *, count: int) -> float:
    """CPU ms per request of the client and the transport alone: the same reports, sent to
    an ASGI app that reads the body and answers at once."""

    async def noop(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"written_off":[]}'})

    transport = httpx2.ASGITransport(app=noop)
    async with httpx2.AsyncClient(transport=transport, base_url="http://noop") as client:
        started = time.process_time()
        for index in range(count):
            await _report(client, bodies, index)
        return (time.process_time() - started) * 1000 / count


async def _until(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the loop did not tick"
        await asyncio.sleep(0.05)


def show(results: list[Result], *, skipped: str | None) -> list[str]:
    lines = [
        f"{'heartbeats (100 hosts, 10,000 VMs)':<38} {'reports':>7} {'obs':>4} {'cpu ms':>7} "
        f"{'net ms':>6} {'db ms':>6} {'wall ms':>8} {'ticks/s':>7} {'share':>7} "
        f"{'share/target':>12}"
    ]
    for found in results:
        db = f"{found.db_cpu_ms:>6.2f}" if found.db_cpu_ms is not None else f"{'-':>6}"
        ticks = f"{found.ticks_per_second:>7.1f}" if found.ticks_per_second is not None else ""
        share = "" if found.what.startswith("floor") else f"{found.share:>6.1%}"
        ratio = f"{found.share / TARGET_SHARE:>11.2f}x" if share else ""
        lines.append(
            f"{found.database + ': ' + found.what:<38} {found.reports:>7} "
            f"{found.observations:>4} {found.cpu_ms:>7.2f} {found.net_ms:>6.2f} {db} "
            f"{found.wall_ms:>8.2f} "
            f"{ticks:>7} {share:>7} {ratio:>12}"
        )
    if skipped:
        lines.append(f"{'postgresql':<38} skipped: {skipped}")
    lines.append(
        "net ms: the control plane's CPU per report (cpu ms less the in-process client's, "
        "measured against a no-op ASGI app); db ms: PostgreSQL's backends; share: (net + db) "
        "x 100 hosts / 5 s, or, loop running, all CPU over the window"
    )
    return lines
