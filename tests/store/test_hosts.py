"""Hosts, agent sessions and host commands in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from blacksmith_mini.domain import model
from blacksmith_mini.store import hosts, repository

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


async def test_a_replaced_agent_session_cannot_report(store: repository.Store) -> None:
    await store.add_host("h1", now=1.0)
    first = await store.hello("h1", report={"vcpus": 4}, observations={}, now=2.0)
    second = await store.hello("h1", report={"vcpus": 4}, observations={}, now=3.0)
    assert second == first + 1
    with pytest.raises(hosts.StaleSession):
        await store.record_report("h1", session=first, observations={}, acks=[], now=4.0)
    record, changed = await store.record_report(
        "h1", session=second, observations={}, acks=[], now=5.0
    )
    assert record.last_seen == 5.0 and not changed
    seen = {"1": {"vm_id": 1, "alive": True, "runner_online": False, "detail": "a"}}
    _, changed = await store.record_report(
        "h1", session=second, observations=seen, acks=[], now=6.0
    )
    assert changed  # a VM appeared
    quiet = {"1": {**seen["1"], "detail": "b"}}
    _, changed = await store.record_report(
        "h1", session=second, observations=quiet, acks=[], now=7.0
    )
    assert not changed  # only a detail moved
    online = {"1": {**seen["1"], "runner_online": True}}
    _, changed = await store.record_report(
        "h1", session=second, observations=online, acks=[], now=8.0
    )
    assert changed


async def test_commands_are_idempotent_by_key_and_an_ack_wipes_the_jit_config(
    store: repository.Store,
) -> None:
    await store.add_host("h1", now=1.0)
    await store.add_host("h2", now=1.0)
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
    await store.record_report(
        "h2", session=h2, observations={}, acks=[(one.id, {"ok": True})], now=5.0
    )
    assert [c.key for c in await store.pending_commands("h1")] == ["start:1:1"]
    await store.record_report(
        "h1", session=session, observations={}, acks=[(one.id, {"ok": True})], now=6.0
    )
    assert await store.pending_commands("h1") == []
    done = await store.command_by_key("start:1:1")
    assert done is not None and done.acked_at == 6.0
    assert "jit_config" not in done.payload and done.payload["name"] == "bm-1"


async def test_written_off_are_the_reported_vms_that_are_gone_unknown_or_elsewhere(
    store: repository.Store,
) -> None:
    await store.add_host("h1", now=1.0)
    mine = await store.create_vm(pool=POOL, scope="acme/app", prefix="bm", now=1.0, host="h1")
    other = await store.create_vm(pool=POOL, scope="acme/app", prefix="bm", now=1.0, host="h2")
    gone = await store.create_vm(pool=POOL, scope="acme/app", prefix="bm", now=1.0, host="h1")
    from dataclasses import replace

    await store.save_vm(replace(gone, state=model.VmState.GONE, ended_at=2.0))
    found = await store.written_off("h1", [mine.vm_id, other.vm_id, gone.vm_id, 999_999])
    assert found == sorted([other.vm_id, gone.vm_id, 999_999])
