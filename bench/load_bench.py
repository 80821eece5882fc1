"""Load test on loopback: ``/api/status`` and the event stream with 1,000 VMs.

Starts ``bench/status_server.py`` (the real app with a synthetic 1,000-VM view) as a separate
process, then measures from this process:

1. ``GET /api/status`` one client at a time, then 100 concurrent clients: p50, p99, errors.
2. 100 clients on ``GET /api/events`` while the view is republished 5 times a second:
   the delay from publication to each client's receipt (p50, p99) and events missed.

Run: ``make bench``. It writes the figures to docs/PERFORMANCE.md and prints them. Bounded:
a fixed number of requests and a fixed duration; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx2
from common import free_port, pct

ROOT = Path(__file__).resolve().parents[1]
VMS = 1000
CLIENTS = 100
REQUESTS_PER_CLIENT = 20
SSE_SECONDS = 10.0


async def status_run(base: str, *, clients: int, per_client: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one_client() -> None:
            nonlocal errors
            for _ in range(per_client):
                started = time.perf_counter()
                try:
                    response = await client.get("/api/status")
                    response.raise_for_status()
                    assert response.content.count(b'"vm_id"') >= VMS
                except Exception:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
        "requests": clients * per_client,
        "p50": pct(latencies, 0.50),
        "p99": pct(latencies, 0.99),
        "errors": errors,
        "rps": len(latencies) / elapsed,
    }


async def sse_run(base: str, *, clients: int, seconds: float) -> dict[str, float]:
    delays: list[float] = []
    gaps = 0
    errors = 0
    received = 0

    async def one_client() -> None:
        nonlocal gaps, errors, received
        last = None
        try:
            async with (
                httpx2.AsyncClient(base_url=base, timeout=None) as client,
                client.stream("GET", "/api/events") as response,
            ):
                deadline = time.monotonic() + seconds
                stamp = None
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        # read the publication time without parsing 600 KB of JSON
                        at = line.find('"last_tick_at":')
                        stamp = float(line[at + 15 : line.index(",", at)])
                    elif line.startswith("id:"):
                        version = int(line[3:].strip())
                    elif line == "" and stamp is not None:
                        delays.append((time.time() - stamp) * 1000)
                        if last is not None and version > last + 1:
                            gaps += version - last - 1
                        last, stamp = version, None
                        received += 1
                    if time.monotonic() > deadline:
                        break
        except Exception:
            errors += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return {
        "events": received,
        "p50": pct(delays, 0.5),
        "p99": pct(delays, 0.99),
        "skipped_versions": gaps,
        "errors": errors,
    }


async def run(base: str) -> dict[str, dict[str, float]]:
    await status_run(base, clients=4, per_client=5)  # warm-up
    return {
        "status_1_client": await status_run(base, clients=1, per_client=200),
        f"status_{CLIENTS}_clients": await status_run(
            base, clients=CLIENTS, per_client=REQUESTS_PER_CLIENT
        ),
        f"events_{CLIENTS}_clients": await sse_run(base, clients=CLIENTS, seconds=SSE_SECONDS),
    }


def write_report(results: dict[str, dict[str, float]]) -> str:
    status_rows = "\n".join(
        f"| {name.replace('_', ' ')} | {r['requests']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
        f"{r['errors']:.0f} | {r['rps']:.0f} |"
        for name, r in results.items()
        if name.startswith("status")
    )
    sse = results[f"events_{CLIENTS}_clients"]
    sse_row = (
        f"| {sse['events']:.0f} | {sse['p50']:.1f} | {sse['p99']:.1f} | "
        f"{sse['skipped_versions']:.0f} | {sse['errors']:.0f} |"
    )
    report = f"""# Performance

Written by `bench/load_bench.py` (run `make bench`); do not edit by hand.
Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}.
Server: the real app (one uvicorn worker) serving a synthetic view of {VMS} VMs and
{VMS // 2} queued jobs, republished 5 times a second; the load comes from a second process
over 127.0.0.1.

## `GET /api/status` with {VMS} VMs

| clients | requests | p50 ms | p99 ms | errors | requests/s |
|---|---|---|---|---|---|
{status_rows}

## `GET /api/events` (server-sent events), {CLIENTS} clients for {SSE_SECONDS:.0f} s

Delay from a view's publication to its arrival at each client.

| events received | p50 ms | p99 ms | versions coalesced | errors |
|---|---|---|---|---|
{sse_row}

"Versions coalesced" counts views a client never saw as their own event because changes
closer than 100 ms to the last one sent go together in one delta (the stream sends a snapshot,
then per-entity deltas; `bench/event_stream_bench.py` measures them at 5 changes a second).
"""
    (ROOT / "docs" / "PERFORMANCE.md").write_text(report)
    return report


def main() -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "status_server.py"),
            "--vms",
            str(VMS),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.strip() == b"ready":
                break
        else:
            raise SystemExit("the benchmark server did not start")
        results = asyncio.run(run(f"http://127.0.0.1:{port}"))
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(write_report(results))


if __name__ == "__main__":
    main()
