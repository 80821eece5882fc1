"""GitHub's cost of polling an organization: 50 repositories, with and without webhooks.

Starts the real app in simulate mode with ``REPOS`` repositories, queues ``JOBS`` short jobs
spread over them during ``SECONDS`` seconds, and reports GitHub REST requests per minute and
per completed job, the share answered 304, how long one poll of every repository takes (they
run concurrently, off the loop's lock) and the longest loop tick meanwhile (VM management never
waits for GitHub), next to GitHub's limits. Used by ``github_bench.py``.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time

import uvicorn
from common import free_port

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app

REPOS = 50
JOBS = 40
SECONDS = 45.0
PRIMARY_PAT_PER_HOUR = 5000
PRIMARY_GHEC_APP_PER_HOUR = 15000
SECONDARY_POINTS_PER_MINUTE = 900


async def run(mode: str, *, seed: int = 5) -> dict[str, float]:
    repositories = [f"acme/r{i:02d}" for i in range(REPOS)]
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        settings = settings_mod.load(simulate=True, data_dir=data_dir)
        settings.server.port = port
        settings.simulator.rate_per_min = 0
        settings.simulator.repositories = repositories
        settings.simulator.webhooks = mode == "webhooks"
        settings.vm.max_vms = 10
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        runtime = app.state.runtime
        sim, loop, rate = runtime.simulation, runtime.loop, runtime.github.rate
        rng = random.Random(seed)
        start, sent_before, free_before = time.monotonic(), rate.requests, rate.not_modified
        queued: list[int] = []
        ticks: list[float] = []
        polls: list[float] = []
        next_job = start
        while time.monotonic() - start < SECONDS:
            if len(queued) < JOBS and time.monotonic() >= next_job:
                job = sim.state.queue_job(
                    repository=rng.choice(repositories),
                    labels=["self-hosted", "linux"],
                    duration=0.5,
                    conclusion="success",
                )
                queued.append(job.id)
                next_job += SECONDS * 0.8 / JOBS
            ticks.append(loop.loop_health.last_tick_duration_ms or 0.0)
            if loop.observer.last_poll_seconds is not None:
                polls.append(loop.observer.last_poll_seconds)
            await asyncio.sleep(0.05)
        minutes = (time.monotonic() - start) / 60
        sent, free = rate.requests - sent_before, rate.not_modified - free_before
        completed = sum(1 for i in queued if sim.state.jobs[i].status == "completed")
        result = {
            "completed": completed,
            "queued": len(queued),
            "per_minute": sent / minutes,
            "charged_per_minute": (sent - free) / minutes,
            "per_job": sent / max(1, completed),
            "share_304": free / max(1, sent),
            "poll_s": max(polls) if polls else float("nan"),
            "interval_s": loop.observer.effective_interval,
            "tick_max_ms": max(ticks) if ticks else float("nan"),
        }
        server.should_exit = True
        await serving
        return result


def report() -> None:
    results = {mode: asyncio.run(run(mode)) for mode in ("webhooks", "polling")}
    print(
        f"\n{REPOS} repositories, {JOBS} jobs over {SECONDS:.0f} s (simulated GitHub, loopback)\n"
    )
    print(
        f"{'mode':<10} {'done':>9} {'req/min':>8} {'charged/min':>12} {'req/job':>8} "
        f"{'304 share':>10} {'poll s':>7} {'interval s':>11} {'max tick ms':>12}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<10} {r['completed']:>4.0f}/{r['queued']:<4.0f} {r['per_minute']:>8.0f} "
            f"{r['charged_per_minute']:>12.0f} {r['per_job']:>8.1f} {100 * r['share_304']:>9.0f}% "
            f"{r['poll_s']:>7.2f} {r['interval_s']:>11.1f} {r['tick_max_ms']:>12.1f}"
        )
    pat, app = PRIMARY_PAT_PER_HOUR / 60, PRIMARY_GHEC_APP_PER_HOUR / 60
    print(
        f"\nGitHub's limits: primary {pat:.0f}/min (token) or {app:.0f}/min (App on GHEC), charged "
        f"only for non-304 answers; secondary {SECONDARY_POINTS_PER_MINUTE} points/min per "
        "endpoint (a GET is 1 point; whether a 304 counts is not documented, so polls are spaced "
        "to stay under 600 requests a minute)."
    )
    for mode, r in results.items():
        print(
            f"{mode}: {r['charged_per_minute'] / pat:.2f}x the token's primary budget, "
            f"{r['per_minute'] / SECONDARY_POINTS_PER_MINUTE:.2f}x the secondary per-endpoint cap"
        )
