"""Webhooks versus polling only, on the simulated GitHub, in one run.

For each mode it starts the real app (simulate mode, local driver, uvicorn on loopback),
queues ``JOBS`` jobs on the simulated GitHub at random moments, waits for all to complete and
reports:

- the time from a job being queued on GitHub to its VM being requested, and to the job
  starting (p50, p95), and the ratio polling / webhooks;
- GitHub REST requests per completed job, and the share answered 304 (free under GitHub's
  primary rate limit).

Modes: ``webhooks`` (signed deliveries, REST safety-net poll every 30 s) and ``polling`` (no
webhooks, REST poll every 5 s: the seed's interval). Then the same at organization size
(``github_scale``: 50 repositories, requests per minute next to GitHub's limits). Run:
``make bench``. Prints figures only.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time

import github_scale
import uvicorn
from common import free_port, pct

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app

JOBS = 20
TARGET_MS = 50.0


async def run_mode(mode: str, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        settings = settings_mod.load(simulate=True, data_dir=data_dir)
        settings.server.port = port
        settings.simulator.rate_per_min = 0
        settings.simulator.webhooks = mode == "webhooks"
        settings.github.poll_interval = 5.0
        settings.github.poll_interval_with_webhooks = 30.0
        settings.vm.max_vms = JOBS
        app = create_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        runtime = app.state.runtime
        sim = runtime.simulation
        rng = random.Random(seed)
        queued = []
        for _ in range(JOBS):
            await asyncio.sleep(rng.uniform(0.1, 0.9))
            job = sim.state.queue_job(
                repository="acme/app",
                labels=["self-hosted", "linux"],
                duration=0.5,
                conclusion="success",
            )
            queued.append(job.id)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(sim.state.jobs[i].status == "completed" for i in queued):
                break
            await asyncio.sleep(0.1)
        loop = runtime.loop
        known = {job.id: job for job in loop.state.recent_completed}
        vms = {vm.name: vm for vm in [*loop.state.gone, *loop.state.vms.values()]}
        to_request, to_start = [], []
        for job_id in queued:
            simulated = sim.state.jobs[job_id]
            ours = known.get(job_id)
            requested = ours.vm_requested_at if ours else None
            if requested is None and simulated.runner_name in vms:
                requested = vms[simulated.runner_name].created_at
            if requested is not None:
                to_request.append(max(0.0, requested - simulated.created_at) * 1000)
            if simulated.started_at is not None:
                to_start.append((simulated.started_at - simulated.created_at) * 1000)
        rate = runtime.github.rate
        completed = sum(1 for i in queued if sim.state.jobs[i].status == "completed")
        server.should_exit = True
        await serving
        return {
            "completed": completed,
            "req_p50": pct(to_request, 0.5),
            "req_p95": pct(to_request, 0.95),
            "start_p50": pct(to_start, 0.5),
            "start_p95": pct(to_start, 0.95),
            "requests_per_job": rate.requests / max(1, completed),
            "share_304": rate.not_modified / max(1, rate.requests),
        }


def main() -> None:
    results = {mode: asyncio.run(run_mode(mode, seed=11)) for mode in ("webhooks", "polling")}
    print(f"{JOBS} jobs queued at random moments; durations 0.5 s; local driver, loopback\n")
    print(
        f"{'mode':<10} {'done':>5} {'queued->VM requested ms':>26} {'queued->started ms':>22} "
        f"{'GitHub req/job':>15} {'304 share':>10}"
    )
    for mode, r in results.items():
        print(
            f"{mode:<10} {r['completed']:>5.0f} {r['req_p50']:>12.1f} p50 {r['req_p95']:>7.1f} "
            f"p95 {r['start_p50']:>8.0f} p50 {r['start_p95']:>6.0f} p95 "
            f"{r['requests_per_job']:>15.1f} {100 * r['share_304']:>9.0f}%"
        )
    web, poll = results["webhooks"], results["polling"]
    print(
        f"\nratio polling/webhooks, queued->VM requested: p50 "
        f"{poll['req_p50'] / max(web['req_p50'], 0.001):.0f}x, p95 "
        f"{poll['req_p95'] / max(web['req_p95'], 0.001):.0f}x"
    )
    print(
        f"ratio polling/webhooks, queued->started: p50 "
        f"{poll['start_p50'] / max(web['start_p50'], 0.001):.1f}x, p95 "
        f"{poll['start_p95'] / max(web['start_p95'], 0.001):.1f}x"
    )
    verdict = "meets" if web["req_p95"] < TARGET_MS else "MISSES"
    print(
        f"target: webhooks p95 queued->VM requested under {TARGET_MS:.0f} ms: "
        f"{web['req_p95']:.1f} ms ({verdict} it)"
    )
    github_scale.report()


if __name__ == "__main__":
    sys.exit(main())
