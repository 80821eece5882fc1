"""Benchmark of ``GET /api/events`` (per-entity deltas): 100 clients, 1,000 VMs, 5 changes/s.

Serves the real app (``create_app`` on the embedded defaults, its loop stopped, on uvloop as
uvicorn runs it) in a child process (this file with ``--serve``: ``status_server.serve_changing``)
on a free loopback port, over a synthetic world of 1,000 VMs and 500 open jobs whose view
changes 5 times a second: three VMs change state, one is gone and one is new, a queued job
starts, a running one ends, a job is queued, and the VMs' uptimes move with the clock. 100 SSE
clients (httpx2) read the stream for 20 s, spread over 2 client processes (``--processes``;
this file with ``--clients-of``): in one process, the 100 clients' own reading, one after the
other, was a good part of the measured delay (the last client read an event about 25 ms after
the server had written it), so it measured the bench as much as the server. It prints:

- p50 and p99 of publication to arrival: the changer stamps each view's ``loop.last_tick_at``
  with the time it publishes it (epoch seconds, the host's one clock); deltas carry it; a
  client notes an event's arrival when the read that completed it returns, before parsing it;
- the mean bytes of a delta event (its data) against the full status, as a ratio;
- whether one client's deltas, applied to its snapshot, give exactly ``GET /api/status``;
- the server's full garbage collections meanwhile (each pause delays every client at once);
- then 5 s of the previous full-resend stream (a copy of the old route, at
  ``/bench/full-events``; ``--no-full`` skips it), and 10 s of deltas after ``gc.freeze()`` in
  the server (what the app could do once started: full collections then skip those objects).

Run: ``uv run python bench/event_stream_bench.py`` (about a minute on 2 cores). Bounded: fixed
numbers of changes and clients, a deadline on every phase; only 127.0.0.1 is contacted.
The figures depend on what else runs: on a shared machine, note ``uptime``'s load with them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import httpx2
import status_server
from common import free_port, pct

from blacksmith_mini.api import status_delta

STAMP = b'"last_tick_at":'

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


async def events(response: httpx2.Response) -> AsyncIterator[tuple[bytes, int, bytes, float]]:
    """(event, id, data, arrival) of each event (bytes: cheap for 100 clients); its arrival
    is when the read that completed it returned, before any parsing."""
    buffer = bytearray()
    async for chunk in response.aiter_raw():
        arrived = time.time()
        buffer += chunk
        while (end := buffer.find(b"\n\n")) >= 0:
            fields = dict(line.split(b": ", 1) for line in bytes(buffer[:end]).split(b"\n"))
            del buffer[: end + 2]
            if b"event" in fields:
                yield fields[b"event"], int(fields[b"id"]), fields[b"data"], arrived


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
            async for name, ident, data, now in events(response):
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


async def clients_of(base: str, path: str, *, clients: int, keep: bool) -> None:
    """A client process: ``clients`` streams of ``path``; prints ``ready`` once each has its
    first event, reads the last version to wait for, then prints its tally (JSON). With
    ``keep``, its first client checks the state its events built against ``GET /api/status``."""
    tally = Tally()
    ready = asyncio.Barrier(clients + 1)
    loop = asyncio.get_running_loop()
    last: asyncio.Future[int] = loop.create_future()
    limits = httpx2.Limits(max_connections=clients + 1, max_keepalive_connections=clients + 1)
    async with httpx2.AsyncClient(base_url=base, timeout=None, limits=limits) as http:
        tasks = [
            asyncio.create_task(
                client(http, path, tally=tally, ready=ready, last=last, keep=keep and i == 0)
            )
            for i in range(clients)
        ]
        async with asyncio.timeout(60):
            await ready.wait()  # every client has its first event
        print("ready", flush=True)
        last.set_result(int(await loop.run_in_executor(None, sys.stdin.readline)))
        states = await asyncio.gather(*tasks)
        if keep and path == "/api/events":
            tally.reproduces = states[0] == (await http.get("/api/status")).json()
    print(json.dumps(dataclasses.asdict(tally)), flush=True)


async def phase(
    base: str, path: str, *, clients: int, changes: int, hz: float, processes: int
) -> Tally:
    """``changes`` at ``hz`` read by ``clients`` spread over ``processes`` client processes."""
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    async with httpx2.AsyncClient(base_url=base, timeout=None) as http:
        async with asyncio.timeout(30):  # the last phase's streams are gone
            while not (await http.get("/bench/idle")).json():
                await asyncio.sleep(0.05)
        command = [sys.executable, __file__, "--clients-of", path, "--base", base]
        workers = [
            await asyncio.create_subprocess_exec(
                *command,
                "--clients",
                str(share),
                *(["--keep"] if i == 0 else []),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                limit=1 << 26,  # a tally is one line
            )
            for i, share in enumerate(shares)
        ]
        try:
            async with asyncio.timeout(60):
                for worker in workers:
                    assert worker.stdout is not None
                    if (await worker.stdout.readline()).strip() != b"ready":
                        raise SystemExit("a client process did not start")
            answer = await http.post("/bench/run", params={"changes": changes, "hz": hz})
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(f"{answer.json()['last']}\n".encode())
                await worker.stdin.drain()
            async with asyncio.timeout(changes / hz + 30):
                parts = [
                    Tally(**json.loads(await w.stdout.readline())) for w in workers if w.stdout
                ]
        finally:
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    worker.kill()
                await worker.wait()
        tally = Tally(snapshot_bytes=parts[0].snapshot_bytes, reproduces=parts[0].reproduces)
        for part in parts:
            tally.delays += part.delays
            tally.sizes += part.sizes
            tally.resyncs += part.resyncs
            tally.errors += part.errors
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


async def measure(
    base: str, *, clients: int, seconds: float, hz: float, full: bool, processes: int
) -> None:
    changes = round(seconds * hz)
    title = f"GET /api/events (deltas), {changes} changes at {hz:g}/s"
    shared: dict[str, Any] = {"clients": clients, "hz": hz, "processes": processes}
    deltas = await phase(base, "/api/events", changes=changes, **shared)
    report(title, deltas, clients=clients)
    if full:
        few = round(5 * hz)
        old = await phase(base, "/bench/full-events", changes=few, **shared)
        report(f"previous full resend, {few} changes at {hz:g}/s", old, clients=clients)
    async with httpx2.AsyncClient(base_url=base) as http:
        await http.post("/bench/gc-freeze")
    few = changes // 2
    frozen = await phase(base, "/api/events", changes=few, **shared)
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
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--no-full", action="store_true", help="skip the old full-resend run")
    parser.add_argument("--clients-of", help=argparse.SUPPRESS)  # a client process: this path
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    with contextlib.suppress(ImportError):  # uvloop, as uvicorn runs the real server
        import uvloop

        run = uvloop.run
    if args.serve:
        run(status_server.serve_changing(args.port, args.vms))
        return
    if args.clients_of:
        run(clients_of(args.base, args.clients_of, clients=args.clients, keep=args.keep))
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
        print(f"{args.vms} VMs, {args.vms // 2} open jobs, {args.clients} clients "
              f"in {args.processes} processes, loopback")  # fmt: skip
        options = {"clients": args.clients, "seconds": args.seconds, "hz": args.hz}
        options["processes"] = args.processes
        run(measure(f"http://127.0.0.1:{port}", **options, full=not args.no_full))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
