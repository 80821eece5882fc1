"""Changes of observations written together (``store/beatgroup.py``), on SQLite and PostgreSQL.

Changes that arrive together are one statement in one transaction, each still conditional on
its own host; one that matches nothing is checked and answered ``resend`` while the others
are written; a database error reaches every waiting report and writes none of them; closing
writes what waits; a second change of a host whose change waits is checked instead; an old
SQLite writes a statement each, in the same one transaction. The write checks what a
heartbeat's check does and reads the host's active VMs, so it is the host's check: a VM
written off elsewhere is felt at the next change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import event, text

from blacksmith_mini.domain import model
from blacksmith_mini.store import beatgroup, beats, heartbeats, observed, repository

from .test_heartbeat_deltas import delta, seen

pytestmark = pytest.mark.anyio


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def connect(store: repository.Store, name: str, vm_id: int) -> tuple[str, int, str]:
    """Host ``name`` with one VM, checked by this replica: its token, session and version."""
    token = await store.add_host(name, now=1.0)
    session = await store.hello(name, report={}, observations={str(vm_id): seen(vm_id)}, now=2)
    beat = await store.heartbeat(token, session=session, observations=None, acks=[], now=3.0)
    assert beat is not None
    return token, session, beat.observed


def statements(store: repository.Store) -> list[str]:
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    return sent


def change_of(host: tuple[str, int, str], vm_id: int, *, now: float = 4.0) -> dict[str, Any]:
    token, session, version = host
    change = delta(version, seen(vm_id, detail="warm"))
    return {"token": token, "session": session, "delta": change, "now": now}


async def beat(store: repository.Store, *, token: str, **report: Any) -> Any:
    return await store.heartbeat(token, observations=None, acks=[], **report)


async def test_changes_of_many_hosts_are_one_statement(store: repository.Store) -> None:
    hosts = [await connect(store, f"h{i}", i) for i in (1, 2, 3)]
    sent = statements(store)
    beats_ = await asyncio.gather(*(beat(store, **change_of(h, i)) for i, h in enumerate(hosts, 1)))
    assert [b.resend for b in beats_] == [False] * 3 and len(sent) == 1
    for i in (1, 2, 3):
        record = await store.host(f"h{i}")
        assert record is not None and record.observations == {str(i): seen(i, detail="warm")}
        assert record.last_seen == 4.0


async def test_a_change_matching_nothing_is_checked_and_the_others_written(
    store: repository.Store,
) -> None:
    first, second = await connect(store, "h1", 1), await connect(store, "h2", 2)
    elsewhere = observed.encode({"2": seen(2, alive=False)})
    async with store.engine.begin() as connection:  # another replica wrote h2 meanwhile
        await beats.write_observations(connection, "h2", elsewhere)
    one, two = await asyncio.gather(
        beat(store, **change_of(first, 1)), beat(store, **change_of(second, 2))
    )
    assert not one.resend and two.resend and two.observed == observed.digest(elsewhere)
    record = await store.host("h1")
    assert record is not None and record.observations == {"1": seen(1, detail="warm")}
    record = await store.host("h2")
    assert record is not None and record.observations == {"2": seen(2, alive=False)}


async def test_an_error_reaches_every_waiting_report_and_writes_nothing(
    store: repository.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = [await connect(store, f"h{i}", i) for i in (1, 2)]
    monkeypatch.setattr(beatgroup, "_statement", lambda *_: text("UPDATE no_such_table SET x = 1"))
    monkeypatch.setattr(store._group, "one_statement", True)
    results = await asyncio.gather(
        *(beat(store, **change_of(h, i)) for i, h in enumerate(hosts, 1)), return_exceptions=True
    )
    assert all(isinstance(r, Exception) and "no_such_table" in str(r) for r in results)
    monkeypatch.undo()
    for i, host in enumerate(hosts, 1):
        record = await store.host(f"h{i}")
        assert record is not None and record.observations == {str(i): seen(i)}
        again = await beat(store, **change_of(host, i, now=5.0))  # the agent's retry
        assert again is not None and not again.resend


async def test_closing_writes_what_waits(store: repository.Store) -> None:
    host = await connect(store, "h1", 1)
    store._group = group = beatgroup.BeatGroup(store.engine, window_seconds=3600)
    waiting = asyncio.create_task(beat(store, **change_of(host, 1)))
    await until(lambda: group._waiting)
    await group.close()
    answered = await waiting
    assert answered is not None and not answered.resend
    record = await store.host("h1")
    assert record is not None and record.observations == {"1": seen(1, detail="warm")}


async def test_a_second_change_of_a_waiting_host_is_checked_instead(
    store: repository.Store,
) -> None:
    host = await connect(store, "h1", 1)
    store._group = group = beatgroup.BeatGroup(store.engine, window_seconds=3600)
    waiting = asyncio.create_task(beat(store, **change_of(host, 1)))
    await until(lambda: group._waiting)
    token, session, version = host
    twice = delta(version, seen(1, detail="again"))
    second = await beat(store, token=token, session=session, delta=twice, now=5.0)
    assert second is not None and not second.resend  # checked and written at once
    await group.close()
    first = await waiting
    assert first is not None and first.resend  # its version is no longer stored
    record = await store.host("h1")
    assert record is not None and record.observations == {"1": seen(1, detail="again")}


async def test_an_old_sqlite_writes_a_statement_each_in_one_transaction(
    store: repository.Store,
) -> None:
    if store.dialect != "sqlite":
        pytest.skip("the fallback is SQLite's (before 3.35); PostgreSQL always has the statement")
    hosts = [await connect(store, f"h{i}", i) for i in (1, 2)]
    store._group = beatgroup.BeatGroup(store.engine, one_statement=False)
    sent = statements(store)
    answered = await asyncio.gather(
        *(beat(store, **change_of(h, i)) for i, h in enumerate(hosts, 1))
    )
    assert [b.resend for b in answered] == [False, False]
    assert len([s for s in sent if "UPDATE hosts SET" in s]) == 2
    for i in (1, 2):
        record = await store.host(f"h{i}")
        assert record is not None and record.observations == {str(i): seen(i, detail="warm")}


async def test_the_write_is_the_hosts_check(store: repository.Store) -> None:
    pool = model.Pool(name="default", labels=frozenset({"self-hosted", "linux"}))
    vm = await store.create_vm(pool=pool, scope="acme/app", prefix="bm", now=1.0, host="h1")
    token, session, version = await connect(store, "h1", vm.vm_id)
    sent = statements(store)
    store._beats._known[heartbeats.token_hash(token)] = replace(
        store._beats._known[heartbeats.token_hash(token)], checked_at=-1e9
    )  # the refresh long due: the change is the check
    kept = await beat(store, **change_of((token, session, version), vm.vm_id))
    assert kept is not None and kept.written_off == [] and len(sent) == 1
    await store.save_vm(replace(vm, state=model.VmState.GONE, ended_at=5.0))  # elsewhere
    moved = delta(kept.observed, seen(vm.vm_id, detail="warmer"))
    felt = await beat(store, token=token, session=session, delta=moved, now=6.0)
    assert felt is not None and felt.written_off == [vm.vm_id] and len(sent) == 3
    bare = await beat(store, token=token, session=session, delta=delta(felt.observed), now=7.0)
    assert bare is not None and bare.written_off == [vm.vm_id] and len(sent) == 3  # memory


async def test_the_loops_view_reads_a_change_without_decoding_it_again(
    store: repository.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = await connect(store, "h1", 1)
    view = store.fenced(None)  # the loop's view of the store
    await view.hosts()
    changed = await beat(store, **change_of(host, 1))  # the report, on the store itself
    assert changed is not None and not changed.resend
    decoded: list[str] = []
    real_loads = heartbeats.json.loads
    monkeypatch.setattr(heartbeats.json, "loads", lambda t: decoded.append(t) or real_loads(t))
    (seen_by_loop,) = await view.hosts()
    assert seen_by_loop.observations == {"1": seen(1, detail="warm")}
    assert decoded == []  # the report's decoding, shared by every view of the store
