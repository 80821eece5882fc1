"""The agent protocol's routes refuse what a host must not say or do, with the fix.

Negative capacity and unknown fields are 422; an unknown or revoked token is 401; a message
from a replaced session is 409; a VM the host was never given is written off (the agent
kills it); one host cannot acknowledge another's command; a command's JIT config is gone
once acknowledged; the hosts API refuses duplicates and removing a host with VMs.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

pytestmark = pytest.mark.anyio
REPORT = {"vcpus": 4, "memory_mib": 8192, "disk_mib": 10_000, "drivers": ["local"]}


async def add(client: httpx2.AsyncClient, name: str) -> str:
    answer = await client.post("/api/hosts", json={"name": name})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def hello(client: httpx2.AsyncClient, token: str, **body: Any) -> httpx2.Response:
    return await client.post(
        "/api/agent/hello", json={"report": REPORT, **body}, headers=auth(token)
    )


async def test_nonsense_capacity_and_unknown_fields_are_refused(
    remote: httpx2.AsyncClient,
) -> None:
    token = await add(remote, "h1")
    bad = await remote.post(
        "/api/agent/hello", json={"report": {**REPORT, "vcpus": -4}}, headers=auth(token)
    )
    assert bad.status_code == 422 and "vcpus" in bad.text
    extra = await hello(remote, token, surprise=True)
    assert extra.status_code == 422


async def test_unknown_and_revoked_tokens_are_401_with_the_fix(
    remote: httpx2.AsyncClient,
) -> None:
    assert (await hello(remote, "bmh_nope")).status_code == 401
    token = await add(remote, "h1")
    assert (await hello(remote, token)).status_code == 200
    assert (await remote.delete("/api/hosts/h1")).status_code == 204
    refused = await hello(remote, token)
    assert refused.status_code == 401 and "host add" in refused.json()["detail"]


async def test_a_replaced_session_is_409_and_a_duplicate_name_too(
    remote: httpx2.AsyncClient,
) -> None:
    token = await add(remote, "h1")
    first = (await hello(remote, token)).json()["session"]
    second = (await hello(remote, token)).json()["session"]
    stale = await remote.post("/api/agent/report", json={"session": first}, headers=auth(token))
    assert stale.status_code == 409 and "reconnect" in stale.json()["detail"]
    fresh = await remote.post("/api/agent/report", json={"session": second}, headers=auth(token))
    assert fresh.status_code == 200
    again = await remote.post("/api/hosts", json={"name": "h1"})
    assert again.status_code == 409 and "host remove h1" in again.json()["detail"]


async def test_a_vm_the_host_was_never_given_is_written_off(remote: httpx2.AsyncClient) -> None:
    token = await add(remote, "h1")
    stray = {"vm_id": 4242, "name": "bm-x-4242-abc", "alive": True, "started_at": 1.0}
    answer = await hello(remote, token, observations=[stray])
    assert answer.status_code == 200
    assert answer.json()["written_off"] == [4242]


async def test_a_host_cannot_acknowledge_another_hosts_command(
    remote: httpx2.AsyncClient,
) -> None:
    one, two = await add(remote, "h1"), await add(remote, "h2")
    s1 = (await hello(remote, one)).json()["session"]
    s2 = (await hello(remote, two)).json()["session"]
    runtime = remote.app.state.runtime  # type: ignore[attr-defined]
    command = await runtime.store.enqueue_command(
        "h1", kind="start", vm_id=7, key="start:7:1", payload={"jit_config": "SECRET"}, now=1.0
    )
    listed = await remote.get(
        "/api/agent/commands", params={"session": s2, "wait": 0}, headers=auth(two)
    )
    assert listed.json()["commands"] == []
    ack = {"id": command.id, "key": command.key, "ok": True}
    await remote.post("/api/agent/report", json={"session": s2, "acks": [ack]}, headers=auth(two))
    mine = await remote.get(
        "/api/agent/commands", params={"session": s1, "wait": 0}, headers=auth(one)
    )
    assert [c["key"] for c in mine.json()["commands"]] == ["start:7:1"]
    await remote.post("/api/agent/report", json={"session": s1, "acks": [ack]}, headers=auth(one))
    done = await runtime.store.command_by_key("start:7:1")
    assert done.acked_at is not None and "jit_config" not in done.payload


async def test_one_box_has_no_agents_and_lists_its_in_process_host(
    client: httpx2.AsyncClient,
) -> None:
    assert (await hello(client, "bmh_x")).status_code == 409
    hosts = (await client.get("/api/hosts")).json()["hosts"]
    assert len(hosts) == 1 and hosts[0]["in_process"] and hosts[0]["state"] == "up"
    refused = await client.post("/api/hosts/anything/cordon", json={})
    assert refused.status_code == 409 and "remote" in refused.json()["detail"]


async def test_a_bare_heartbeat_keeps_the_host_up_and_a_replaced_one_is_409(
    remote: httpx2.AsyncClient,
) -> None:
    token = await add(remote, "h1")
    stray = {"vm_id": 4242, "name": "bm-x-4242-abc", "alive": True, "started_at": 1.0}
    session = (await hello(remote, token, observations=[stray])).json()["session"]
    bare = await remote.post("/api/agent/report", json={"session": session}, headers=auth(token))
    assert bare.status_code == 200
    assert bare.json()["written_off"] == [4242]  # judged on the observations that stand
    await hello(remote, token)
    stale = await remote.post("/api/agent/report", json={"session": session}, headers=auth(token))
    assert stale.status_code == 409 and "reconnect" in stale.json()["detail"]
