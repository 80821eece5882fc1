"""An agent's reports reuse one connection: the control plane (``up``'s uvicorn) keeps an idle
connection longer than the agent's client does, and both longer than the time between
reports. At the HTTP stacks' defaults (5 s each) every heartbeat raced the server closing it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import anyio
import pytest
import uvicorn

from blacksmith_mini.agent import main as agent_main
from blacksmith_mini.agent.settings import AgentSettings
from blacksmith_mini.api import serving
from blacksmith_mini.settings_hosts import HostsSettings
from blacksmith_mini.vm.remote import wire

UVICORN_DEFAULT_KEEP_ALIVE = 5.0
pytestmark = pytest.mark.anyio


def test_the_control_plane_keeps_connections_longer_than_agents_and_agents_than_a_beat() -> None:
    served = serving.config(object(), host="127.0.0.1", port=8000)
    assert served.timeout_keep_alive == wire.SERVER_KEEP_ALIVE_SECONDS
    assert wire.SERVER_KEEP_ALIVE_SECONDS > wire.AGENT_IDLE_SECONDS
    assert 2 * HostsSettings().heartbeat_seconds < wire.AGENT_IDLE_SECONDS


async def test_a_connection_idle_past_uvicorns_default_still_carries_the_next_report() -> None:
    peers: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        peers.append(scope["client"])  # the agent's side of the connection: (address, port)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(serving.config(app, host="127.0.0.1", port=port, lifespan="off"))
    serving_task = asyncio.create_task(server.serve())
    try:
        with anyio.fail_after(30):  # started: polled with a deadline
            while not server.started:
                assert not serving_task.done(), "uvicorn did not start"
                await asyncio.sleep(0.02)
        settings = AgentSettings(control_plane=f"http://127.0.0.1:{port}")
        async with agent_main.client_for(settings, token="bmh_test") as client:
            assert (await client.get("/")).status_code == 200
            # The idle time is what is under test: past uvicorn's default limit, well short of ours.
            await asyncio.sleep(UVICORN_DEFAULT_KEEP_ALIVE + 0.5)
            assert (await client.get("/")).status_code == 200
        assert peers[0] == peers[1], "the second report came on a new connection"
    finally:
        server.should_exit = True
        await serving_task
