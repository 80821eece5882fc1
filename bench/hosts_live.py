"""Heartbeats with the loop running, as a deployment pays for them: the control plane's app
served by uvicorn as ``up`` serves it (``api/serving.py``) on a local port, the HTTP parsing
of every report included; the 100 hosts' agents in a process of their own
(``hosts_agents.py``: their CPU is not the control plane's, so nothing has to be taken out);
PostgreSQL's backends counted when it is the store.

Windows of ``WINDOW_SECONDS`` with no reports and with reports at the real rate (100 hosts
every 5 s: 20 a second) alternate, ``PAIRS`` of each, after a window of reports that brings
every host's heartbeat memory to its steady state. The control plane's CPU over each window
(``time.process_time``: this process is the control plane) less the quiet windows' is what
the reports add, the loop's work they cause included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import hosts_seed
import uvicorn

from blacksmith_mini.api import serving

HERE = pathlib.Path(__file__).resolve().parent
WINDOW_SECONDS, PAIRS, RATE = 5.0, 4, 20.0


@dataclasses.dataclass(frozen=True)
class Windows:
    """The totals of one kind of window: reports sent, CPU s, database CPU s, wall s, ticks."""

    reports: int
    cpu: float
    db: float
    wall: float
    ticks: int

    @property
    def share(self) -> float:
        return (self.cpu + self.db) / self.wall

    def plus(self, other: Windows) -> Windows:
        return Windows(
            reports=self.reports + other.reports,
            cpu=self.cpu + other.cpu,
            db=self.db + other.db,
            wall=self.wall + other.wall,
            ticks=self.ticks + other.ticks,
        )


NONE = Windows(reports=0, cpu=0.0, db=0.0, wall=0.0, ticks=0)


async def measure(
    app: Any,
    *,
    bodies: Sequence[tuple[dict[str, str], bytes]],
    hosts: int,
    ticks: Callable[[], int],
    pids: list[int],
) -> tuple[Windows, Windows]:
    """The quiet windows' totals and the reporting windows'; ``bodies`` are sent in turn,
    each once (the hosts' reports, ``hosts`` of them in each round)."""
    port = _free_port()
    server = uvicorn.Server(serving.config(app, host="127.0.0.1", port=port, lifespan="off"))
    served = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not served.done() and time.monotonic() < deadline, "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        with tempfile.TemporaryDirectory(prefix="hosts-agents-") as tmp:
            path = pathlib.Path(tmp) / "bodies.json"
            path.write_text(json.dumps([[headers, body.decode()] for headers, body in bodies]))
            agents = await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "hosts_agents.py"),
                str(port),
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                await _send(agents, seconds=hosts / RATE)  # every host once: steady
                quiet, busy = NONE, NONE
                for _ in range(PAIRS):
                    quiet = quiet.plus(await _window(None, ticks=ticks, pids=pids))
                    busy = busy.plus(await _window(agents, ticks=ticks, pids=pids))
            finally:
                assert agents.stdin is not None
                agents.stdin.write(b"quit\n")
                await agents.stdin.drain()
                assert await agents.wait() == 0, "an agent's report was refused"
    finally:
        server.should_exit = True
        await served
    return quiet, busy


async def _window(
    agents: asyncio.subprocess.Process | None, *, ticks: Callable[[], int], pids: list[int]
) -> Windows:
    """One window: with ``agents`` reporting, or quiet (None)."""
    ticks_before, db_before = ticks(), hosts_seed.backend_cpu_seconds(pids)
    cpu, wall = time.process_time(), time.perf_counter()
    sent = 0
    if agents is None:
        await asyncio.sleep(WINDOW_SECONDS)
    else:
        sent = await _send(agents, seconds=WINDOW_SECONDS)
    return Windows(
        reports=sent,
        cpu=time.process_time() - cpu,
        db=hosts_seed.backend_cpu_seconds(pids) - db_before,
        wall=time.perf_counter() - wall,
        ticks=ticks() - ticks_before,
    )


async def _send(agents: asyncio.subprocess.Process, *, seconds: float) -> int:
    assert agents.stdin is not None and agents.stdout is not None
    agents.stdin.write(f"send {seconds} {RATE}\n".encode())
    await agents.stdin.drain()
    line = await agents.stdout.readline()
    assert line.startswith(b"sent "), f"the agents stopped: {line!r}"
    return int(line.split()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
