"""A report of what changed (``observed.Delta``) in the store, on SQLite and PostgreSQL.

It is applied only to the version it names: the stored observations then equal the agent's,
written in one statement with the new version answered; a change of another version (a reply
the agent never saw, another replica's write) applies nothing and asks for them whole, while
its acknowledgements still count; an empty change of the stored version is a bare heartbeat,
answered from memory; a change of the version this replica checked is one conditional write,
which matches nothing when the observations changed or the token was revoked elsewhere; a
replica whose memory is behind applies a change on what is stored.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, update

from blacksmith_mini.store import beats, observed, repository
from blacksmith_mini.store.tables import HostRow
from blacksmith_mini.vm.remote import wire

pytestmark = pytest.mark.anyio


def seen(vm_id: int, **changes: Any) -> dict[str, Any]:
    fields = {"vm_id": vm_id, "name": f"bm-{vm_id}", "alive": True, "started_at": 1.0}
    return wire.Observation(**(fields | changes)).model_dump(mode="json")


def delta(base: str, *changed: dict[str, Any], gone: tuple[int, ...] = ()) -> observed.Delta:
    return observed.Delta(
        base=base, changed={str(c["vm_id"]): c for c in changed}, gone=[str(g) for g in gone]
    )


async def connected(store: repository.Store) -> tuple[str, int, str]:
    """Host h1 with VMs 7 and 8; its token, session and observations' version."""
    token = await store.add_host("h1", now=1.0)
    session = await store.hello("h1", report={}, observations={"7": seen(7), "8": seen(8)}, now=2)
    beat = await store.heartbeat(token, session=session, observations=None, acks=[], now=3.0)
    assert beat is not None
    return token, session, beat.observed


async def test_a_change_of_the_stored_version_is_applied_in_one_write(
    store: repository.Store,
) -> None:
    token, session, version = await connected(store)
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    change = delta(version, seen(7, detail="warm"), seen(9), gone=(8,))
    beat = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.0, delta=change
    )
    assert beat is not None and not beat.resend and beat.changed  # VM 8 gone, 9 new
    expected = {"7": seen(7, detail="warm"), "9": seen(9)}
    assert beat.observed == observed.digest(observed.encode(expected)) != version
    assert len([s for s in sent if "observations" in s.partition("WHERE")[0]]) == 1
    record = await store.host("h1")
    assert record is not None and record.observations == expected
    assert (await store.hosts())[0].observations == expected
    quiet = delta(beat.observed, seen(7, detail="warmer"))
    calm = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=5.0, delta=quiet
    )
    assert calm is not None and not calm.changed  # a detail: stored, the loop not woken


async def test_a_change_of_another_version_applies_nothing_but_its_acks(
    store: repository.Store,
) -> None:
    token, session, version = await connected(store)
    command = await store.enqueue_command(
        "h1", kind="stop", vm_id=7, key="stop:7:1", payload={}, now=3.5
    )
    ack = (command.id, {"key": command.key, "ok": True})
    stale = delta("0" * 32, seen(7, alive=False))
    beat = await store.heartbeat(
        token, session=session, observations=None, acks=[ack], now=4.0, delta=stale
    )
    assert beat is not None and beat.resend and beat.observed == version
    record = await store.host("h1")
    assert record is not None and record.observations == {"7": seen(7), "8": seen(8)}
    assert await store.pending_commands("h1") == []  # acknowledged all the same
    whole = wire.encode_observations([wire.Observation(**seen(7, alive=False))])
    again = await store.heartbeat(token, session=session, observations=whole, acks=[], now=5.0)
    assert again is not None and not again.resend and again.changed


async def test_an_empty_change_of_the_stored_version_is_answered_from_memory(
    store: repository.Store,
) -> None:
    token, session, version = await connected(store)
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    bare = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.0, delta=delta(version)
    )
    assert bare is not None and not bare.resend and bare.observed == version
    assert sent == []  # no statement
    other = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.5, delta=delta("1" * 32)
    )
    assert other is not None and other.resend and len(sent) == 1  # checked: not this version


async def test_a_replica_behind_applies_a_change_on_what_is_stored(
    store: repository.Store,
) -> None:
    token, session, _ = await connected(store)
    await store.hosts()  # this replica remembers VMs 7 and 8
    elsewhere = observed.encode({"8": seen(8), "9": seen(9)})
    async with store.engine.begin() as connection:  # another replica applied a change
        await beats.write_observations(connection, "h1", elsewhere)
    store._beats.forget("h1")  # as after its refresh period
    change = delta(observed.digest(elsewhere), gone=(8,))
    beat = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=5.0, delta=change
    )
    assert beat is not None and not beat.resend
    record = await store.host("h1")
    assert record is not None and record.observations == {"9": seen(9)}
    assert beat.written_off == [9]  # held by no VM row of this store: written off


async def test_a_change_of_the_version_this_replica_checked_is_one_statement(
    store: repository.Store,
) -> None:
    token, session, version = await connected(store)
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    first = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.0, delta=delta(version, seen(9))
    )
    assert first is not None and len(sent) == 1 and "UPDATE hosts SET" in sent[0]
    assert first.written_off == [7, 8, 9]  # no VM row holds them: the write read that too
    record = await store.host("h1")
    assert record is not None and record.last_seen == 4.0 and "9" in record.observations
    store._beats._known.clear()  # the refresh is due
    checked = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=5.0, delta=delta(first.observed)
    )
    assert checked is not None and checked.written_off == [7, 8, 9]


async def test_a_change_made_elsewhere_meanwhile_makes_the_known_way_match_nothing(
    store: repository.Store,
) -> None:
    token, session, version = await connected(store)
    elsewhere = observed.encode({"7": seen(7)})
    async with store.engine.begin() as connection:  # another replica's write, not felt here
        await beats.write_observations(connection, "h1", elsewhere)
    beat = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.0, delta=delta(version, seen(9))
    )
    assert beat is not None and beat.resend and beat.observed == observed.digest(elsewhere)
    record = await store.host("h1")
    assert record is not None and record.observations == {"7": seen(7)}
    async with store.engine.begin() as connection:  # another replica revokes the token
        await connection.execute(update(HostRow).values(revoked_at=5.0))
    change = delta(beat.observed, seen(9))
    refused = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=6.0, delta=change
    )
    assert refused is None  # a change is never taken from memory alone
    record = await store.host("h1")
    assert record is not None and record.observations == {"7": seen(7)}
