"""A report wakes only who must act on it, and a host found down comes back through one.

A report that says what the last one said wakes neither the loop (``host_changes``) nor the
acknowledgement waiters (``host_reports``, shared by every replica through PostgreSQL); an
acknowledgement wakes the waiters, a VM's material change the loop. A down host's bare
heartbeat is 409 (reconnect); its full report brings it back up and wakes the loop.
"""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from blacksmith_mini.vm.remote import wakeups as wake

pytestmark = pytest.mark.anyio
REPORT = {"vcpus": 4, "memory_mib": 8192, "disk_mib": 10_000, "drivers": ["local"]}
SEEN = {"vm_id": 4242, "name": "bm-x-4242-abc", "alive": True, "started_at": 1.0}


async def connect(client: httpx2.AsyncClient) -> tuple[dict[str, str], int]:
    made = await client.post("/api/hosts", json={"name": "h1"})
    auth = {"authorization": f"Bearer {made.json()['token']}"}
    hello = await client.post(
        "/api/agent/hello", json={"report": REPORT, "observations": [SEEN]}, headers=auth
    )
    return auth, int(hello.json()["session"])


def counters(client: httpx2.AsyncClient) -> tuple[int, int]:
    wakeups = client.app.state.runtime.wakeups  # type: ignore[attr-defined]
    return wakeups.counter(wake.CHANGES), wakeups.counter(wake.REPORTS)


async def report(client: httpx2.AsyncClient, auth: dict[str, str], **body: Any) -> Any:
    return await client.post("/api/agent/report", json=body, headers=auth)


async def test_a_report_wakes_only_who_must_act_on_it(remote: httpx2.AsyncClient) -> None:
    auth, session = await connect(remote)
    before = counters(remote)
    same = await report(remote, auth, session=session, observations=[SEEN])
    bare = await report(remote, auth, session=session)
    assert same.status_code == bare.status_code == 200
    assert same.json()["written_off"] == bare.json()["written_off"] == [4242]
    assert counters(remote) == before  # nothing to act on: nobody woken
    runtime = remote.app.state.runtime  # type: ignore[attr-defined]
    command = await runtime.store.enqueue_command(
        "h1", kind="stop", vm_id=4242, key="stop:4242", payload={}, now=1.0
    )
    ack = {"id": command.id, "key": command.key, "ok": True}
    await report(remote, auth, session=session, acks=[ack])
    changes, reports = counters(remote)
    assert reports == before[1] + 1  # the acknowledgement's waiters
    gone = {**SEEN, "alive": False, "exit_code": 0}
    await report(remote, auth, session=session, observations=[gone])
    assert counters(remote)[0] > changes  # a VM exited: the loop acts


async def test_a_host_found_down_comes_back_with_a_full_report(
    remote: httpx2.AsyncClient,
) -> None:
    auth, session = await connect(remote)
    store = remote.app.state.runtime.store  # type: ignore[attr-defined]
    assert await store.mark_down("h1", reason="no heartbeat", now=1.0)
    bare = await report(remote, auth, session=session)
    assert bare.status_code == 409 and "reconnect" in bare.json()["detail"]
    changes = counters(remote)[0]
    back = await report(remote, auth, session=session, observations=[SEEN])
    assert back.status_code == 200 and back.json()["written_off"] == [4242]
    host = await store.host("h1")
    assert host is not None and host.down_since is None
    assert counters(remote)[0] > changes  # its VMs may be used again: the loop acts
    stale = await report(remote, auth, session=session + 1, observations=[SEEN])
    assert stale.status_code == 409 and "replaced" in stale.json()["detail"]
