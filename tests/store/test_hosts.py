"""Hosts, agent sessions and host commands in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import pytest

from blacksmith_mini.domain import model
from blacksmith_mini.store import hosts, observed, repository

pytestmark = pytest.mark.anyio
POOL = model.Pool(name="default", labels=frozenset({"self-hosted", "linux"}))


async def test_a_host_token_is_stored_hashed_names_its_host_and_can_be_revoked(
    store: repository.Store,
) -> None:
    token = await store.add_host("h1", now=1.0)
    assert token.startswith("bmh_")
    found = await store.host_for_token(token)
    assert found is not None and found.name == "h1"
    assert await store.host_for_token(token + "x") is None
    listed = await store.hosts()
    assert [h.name for h in listed] == ["h1"]
    assert await store.revoke_host("h1", now=2.0)
    assert await store.host_for_token(token) is None


async def test_a_duplicate_host_name_is_refused_with_the_fix(store: repository.Store) -> None:
    await store.add_host("h1", now=1.0)
    with pytest.raises(hosts.HostExists, match="host remove h1"):
        await store.add_host("h1", now=2.0)


def encoded(observations: dict[str, Any]) -> bytes:
    return observed.encode(observations)


async def test_a_replaced_agent_session_cannot_report(store: repository.Store) -> None:
    token = await store.add_host("h1", now=1.0)
    first = await store.hello("h1", report={"vcpus": 4}, observations={}, now=2.0)
    second = await store.hello("h1", report={"vcpus": 4}, observations={}, now=3.0)
    assert second == first + 1
    beat = partial(store.heartbeat, token, acks=[])
    assert await beat(session=first, observations=encoded({}), now=4.0) is None
    found = await beat(session=second, observations=encoded({}), now=5.0)
    assert found is not None and not found.changed
    record = await store.host("h1")
    assert record is not None and record.last_seen == 5.0
    seen = {"1": {"vm_id": 1, "alive": True, "runner_online": False, "detail": "a"}}
    found = await beat(session=second, observations=encoded(seen), now=6.0)
    assert found is not None and found.changed  # a VM appeared
    quiet = {"1": {**seen["1"], "detail": "b"}}
    found = await beat(session=second, observations=encoded(quiet), now=7.0)
    assert found is not None and not found.changed  # only a detail moved
    record = await store.host("h1")
    assert record is not None and record.observations == quiet  # but it is stored
    online = {"1": {**seen["1"], "runner_online": True}}
    found = await beat(session=second, observations=encoded(online), now=8.0)
    assert found is not None and found.changed


async def test_commands_are_idempotent_by_key_and_an_ack_wipes_the_jit_config(
    store: repository.Store,
) -> None:
    tokens = {name: await store.add_host(name, now=1.0) for name in ("h1", "h2")}
    session = await store.hello("h1", report={}, observations={}, now=2.0)
    payload = {"name": "bm-1", "jit_config": "SECRET"}
    one = await store.enqueue_command(
        "h1", kind="start", vm_id=1, key="start:1:1", payload=payload, now=3.0
    )
    again = await store.enqueue_command(
        "h1", kind="start", vm_id=1, key="start:1:1", payload=payload, now=4.0
    )
    assert again.id == one.id
    assert [c.key for c in await store.pending_commands("h1")] == ["start:1:1"]
    assert await store.pending_commands("h2") == []
    # Another host cannot acknowledge h1's command.
    h2 = await store.hello("h2", report={}, observations={}, now=2.0)
    ack = [(one.id, {"ok": True})]
    assert await store.heartbeat(tokens["h2"], session=h2, observations=None, acks=ack, now=5.0)
    assert [c.key for c in await store.pending_commands("h1")] == ["start:1:1"]
    assert await store.heartbeat(
        tokens["h1"], session=session, observations=None, acks=ack, now=6.0
    )
    assert await store.pending_commands("h1") == []
    done = await store.command_by_key("start:1:1")
    assert done is not None and done.acked_at == 6.0
    assert "jit_config" not in done.payload and done.payload["name"] == "bm-1"


async def test_a_heartbeat_writes_off_the_reported_vms_gone_unknown_or_elsewhere(
    store: repository.Store,
) -> None:
    token = await store.add_host("h1", now=1.0)
    mine = await store.create_vm(pool=POOL, scope="acme/app", prefix="bm", now=1.0, host="h1")
    other = await store.create_vm(pool=POOL, scope="acme/app", prefix="bm", now=1.0, host="h2")
    gone = await store.create_vm(pool=POOL, scope="acme/app", prefix="bm", now=1.0, host="h1")
    await store.save_vm(replace(gone, state=model.VmState.GONE, ended_at=2.0))
    reported = (mine.vm_id, other.vm_id, gone.vm_id, 999_999)
    seen = {str(vm_id): {"vm_id": vm_id, "alive": True} for vm_id in reported}
    session = await store.hello("h1", report={}, observations=seen, now=2.0)
    beat = partial(store.heartbeat, token, session=session, acks=[], now=3.0)
    expected = sorted([other.vm_id, gone.vm_id, 999_999])  # another host's, gone, unknown
    bare = await beat(observations=None)  # judged on the stored observations
    assert bare is not None and bare.written_off == expected
    full = await beat(observations=encoded(seen))
    assert full is not None and full.written_off == expected
