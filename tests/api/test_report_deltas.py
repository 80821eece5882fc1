"""Reports of what changed, through the route and from the agent itself (protocol 2).

A protocol-1 agent's report is answered with the two fields it knows; one that carries
``base`` gets the version stored (``observed``). A change of that version is applied; one of
another version asks for the observations whole (``resend``); a report that sends them whole
and as changes at once, or changes with no version, is 422 naming the fix. Hello takes
agents of either protocol and names the upgrade order to one of another. The agent sends its
observations whole once, then only what changed, and whole again when asked.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest

from blacksmith_mini.agent import agent as agent_mod
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.vm.remote import wire

pytestmark = pytest.mark.anyio
REPORT = {"vcpus": 4, "memory_mib": 8192, "disk_mib": 10_000, "drivers": ["local"]}


def seen(vm_id: int, **changes: Any) -> dict[str, Any]:
    fields = {"vm_id": vm_id, "name": f"bm-{vm_id}", "alive": True, "started_at": 1.0}
    return wire.Observation(**(fields | changes)).model_dump(mode="json")


async def connect(client: httpx2.AsyncClient, **hello: Any) -> tuple[dict[str, str], int]:
    made = await client.post("/api/hosts", json={"name": "h1"})
    auth = {"authorization": f"Bearer {made.json()['token']}"}
    body = {"report": REPORT, "observations": [seen(7)], **hello}
    answer = await client.post("/api/agent/hello", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    return auth, int(answer.json()["session"])


async def stored(client: httpx2.AsyncClient) -> dict[str, Any]:
    host = await client.app.state.runtime.store.host("h1")  # type: ignore[attr-defined]
    return dict(host.observations)


async def test_a_protocol_1_agent_gets_the_reply_it_knows(remote: httpx2.AsyncClient) -> None:
    auth, session = await connect(remote, protocol=1)
    old = await remote.post("/api/agent/report", json={"session": session}, headers=auth)
    assert old.status_code == 200 and set(old.json()) == {"written_off", "lease_seconds"}


async def test_changes_of_the_version_answered_are_applied(remote: httpx2.AsyncClient) -> None:
    auth, session = await connect(remote)
    first = await remote.post(
        "/api/agent/report", json={"session": session, "base": None}, headers=auth
    )
    version = first.json()["observed"]
    body = {"session": session, "base": version, "changed": [seen(8)], "gone": [7]}
    changed = await remote.post("/api/agent/report", json=body, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["observed"] != version and "resend" not in changed.json()
    assert await stored(remote) == {"8": seen(8)}
    again = await remote.post("/api/agent/report", json=body, headers=auth)  # a lost reply
    assert again.json()["resend"] is True
    assert await stored(remote) == {"8": seen(8)}


@pytest.mark.parametrize(
    ("body", "fix"),
    [
        ({"changed": [seen(8)]}, "need the version they change"),
        ({"gone": [7]}, "need the version they change"),
        ({"base": "v", "observations": [seen(8)]}, "whole or as changes"),
        ({"base": "v", "changed": [seen(7)], "gone": [7]}, "none of them changed"),
    ],
)
async def test_a_report_that_makes_no_sense_is_422_naming_the_fix(
    remote: httpx2.AsyncClient, body: dict[str, Any], fix: str
) -> None:
    auth, session = await connect(remote)
    answer = await remote.post("/api/agent/report", json={"session": session, **body}, headers=auth)
    assert answer.status_code == 422 and fix in answer.text, answer.text
    assert await stored(remote) == {"7": seen(7)}


async def test_hello_names_the_upgrade_order_to_another_protocol(
    remote: httpx2.AsyncClient,
) -> None:
    made = await remote.post("/api/hosts", json={"name": "h1"})
    auth = {"authorization": f"Bearer {made.json()['token']}"}
    body = {"report": REPORT, "protocol": 3}
    answer = await remote.post("/api/agent/hello", json=body, headers=auth)
    assert answer.status_code == 409 and "replicas first, then agents" in answer.text


class Observed:
    """A driver whose observations the test sets (its VMs, given by no command, are written
    off: the kills are recorded and change nothing here)."""

    def __init__(self) -> None:
        self.seen: dict[int, vm_driver.VmObservation] = {}
        self.killed: list[int] = []

    async def stop(self, vm_id: int, *, force: bool) -> None:
        self.killed.append(vm_id)

    async def release(self, vm_id: int) -> None:
        pass

    async def observe(self) -> dict[int, vm_driver.VmObservation]:
        return dict(self.seen)

    def put(self, vm_id: int, **changes: Any) -> None:
        self.seen[vm_id] = wire.observation_from_wire(seen(vm_id, **changes))


async def test_the_agent_sends_what_changed_and_the_whole_when_asked(
    remote: httpx2.AsyncClient,
) -> None:
    auth, session = await connect(remote)
    sent: list[dict[str, Any]] = []

    async def record(request: httpx2.Request) -> None:
        if request.url.path.endswith("/report"):
            sent.append(json.loads(request.content))

    remote.headers.update(auth)
    remote.event_hooks["request"].append(record)
    driver = Observed()
    report = wire.HostReport.model_validate(REPORT)
    agent = agent_mod.Agent(client=remote, driver=driver, journal=None, report=report)  # type: ignore[arg-type]
    agent.session = session
    driver.put(7)
    driver.put(8)
    await agent._send_report([])  # no version yet: whole
    assert sent[-1]["base"] is None and len(sent[-1]["observations"]) == 2
    driver.put(8, job_started=True)
    await agent._send_report([])
    assert sent[-1]["changed"] == [seen(8, job_started=True)] and sent[-1]["gone"] == []
    assert "observations" not in sent[-1]
    del driver.seen[7]
    await agent._send_report([])
    assert sent[-1]["changed"] == [] and sent[-1]["gone"] == [7]
    assert await stored(remote) == {"8": seen(8, job_started=True)}
    await agent._send_report([])  # nothing changed: a bare heartbeat of that version
    assert sent[-1]["changed"] == sent[-1]["gone"] == [] and sent[-1]["base"]
    agent._stored = (session, "f" * 32, agent._stored[2])  # type: ignore[index]
    await agent._send_report([])  # the control plane holds another version: resend
    assert agent._stored is None and agent._changed.is_set()
    driver.put(9)
    await agent._send_report([])
    assert sent[-1]["base"] is None and len(sent[-1]["observations"]) == 2
    assert await stored(remote) == {"8": seen(8, job_started=True), "9": seen(9)}
