"""A real Blacksmith Mini app serving a synthetic view of N VMs (for the load benchmarks).

``python bench/status_server.py --vms 1000 --port 8800 --republish-hz 5`` starts the real app
factory on the embedded defaults, stops its loop, and publishes a synthetic view of N VMs and
N/2 queued jobs ``--republish-hz`` times a second (so the event stream has work to push).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import synthetic
import uvicorn

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app
from blacksmith_mini.control import view as view_mod


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
