"""A heartbeat is cheap in the store (SQLite and PostgreSQL): at most one statement when
nothing changed, and none when this replica checked the host within ``refresh_seconds``.

A checked report verifies the token and session, stamps ``last_seen`` and reads what it needs
in one ``UPDATE ... RETURNING``; an unchanged one soon after is answered from memory and its
stamp written with every other host's in one statement by ``flush_heartbeats``; a change made
on this replica (down, revoked, a new session) is felt at once, one made elsewhere within
``refresh_seconds``; the observations are written again only when their bytes differ; a
stored observation lacking a field (an older agent's) equals one carrying its default; and
the wire encodes observations exactly as the store does, so an agent that says what its
``hello`` said matches what is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, update

from blacksmith_mini.store import observed, repository
from blacksmith_mini.store.tables import HostRow
from blacksmith_mini.vm.remote import wire

pytestmark = pytest.mark.anyio
SEEN = {"vm_id": 7, "name": "bm-7", "alive": True, "started_at": 1.0, "runner_online": True}


def dumped(**changes: Any) -> dict[str, Any]:
    """``SEEN`` as an agent sends it (every field) and ``hello`` stores it."""
    return {"7": wire.Observation(**(SEEN | changes)).model_dump(mode="json")}


class Statements:
    """The SQL statements a store sends while counting."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.sent.append(" ".join(statement.split()))

    def writing_observations(self) -> list[str]:
        return [s for s in self.sent if s.startswith("UPDATE hosts SET observations")]


@pytest.fixture
def statements(store: repository.Store) -> Iterator[Statements]:
    counted = Statements()
    event.listen(store.engine.sync_engine, "before_cursor_execute", counted)
    try:
        yield counted
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", counted)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_an_unchanged_report_is_one_statement_then_none_until_the_refresh(
    store: repository.Store, statements: Statements
) -> None:
    clock = Clock()
    store._beats.clock = clock
    token = await store.add_host("h1", now=1.0)
    other = await store.add_host("h2", now=1.0)
    session = await store.hello("h1", report={}, observations=dumped(), now=2.0)
    second = await store.hello("h2", report={}, observations={}, now=2.0)
    statements.sent.clear()
    same = wire.encode_observations([wire.Observation(**SEEN)])
    beat = await store.heartbeat(token, session=session, observations=same, acks=[], now=3.0)
    assert beat is not None and not beat.changed
    assert len(statements.sent) == 1 and statements.sent[0].startswith("UPDATE hosts")
    await store.heartbeat(other, session=second, observations=None, acks=[], now=3.0)
    statements.sent.clear()
    bare = await store.heartbeat(token, session=session, observations=None, acks=[], now=4.0)
    again = await store.heartbeat(token, session=session, observations=same, acks=[], now=4.5)
    elsewhere = await store.heartbeat(other, session=second, observations=None, acks=[], now=4.6)
    assert bare is not None and not bare.changed and again is not None and elsewhere is not None
    assert statements.sent == []  # answered from memory
    assert await store.flush_heartbeats() == 2
    assert len(statements.sent) == 1 and statements.writing_observations() == []
    record = await store.host("h1")
    assert record is not None and record.last_seen == 4.5
    assert await store.flush_heartbeats() == 0
    clock.now += 12.5  # past refresh_seconds: checked against the database again
    statements.sent.clear()
    await store.heartbeat(token, session=session, observations=None, acks=[], now=7.0)
    assert len(statements.sent) == 1


async def test_a_refusal_made_elsewhere_is_felt_within_the_refresh(
    store: repository.Store,
) -> None:
    clock = Clock()
    store._beats.clock = clock
    token = await store.add_host("h1", now=1.0)
    session = await store.hello("h1", report={}, observations={}, now=2.0)
    assert await store.heartbeat(token, session=session, observations=None, acks=[], now=3.0)
    async with store.engine.begin() as connection:  # another replica revokes it
        await connection.execute(update(HostRow).values(revoked_at=4.0))
    assert await store.heartbeat(token, session=session, observations=None, acks=[], now=5.0)
    clock.now += 12.5
    assert (
        await store.heartbeat(token, session=session, observations=None, acks=[], now=6.0) is None
    )


async def test_a_changed_detail_is_stored_without_being_a_change_for_the_loop(
    store: repository.Store, statements: Statements
) -> None:
    token = await store.add_host("h1", now=1.0)
    session = await store.hello("h1", report={}, observations=dumped(), now=2.0)
    statements.sent.clear()
    noted = wire.encode_observations([wire.Observation(**SEEN, detail="warm")])
    beat = await store.heartbeat(token, session=session, observations=noted, acks=[], now=3.0)
    assert beat is not None and not beat.changed
    assert len(statements.writing_observations()) == 1
    record = await store.host("h1")
    assert record is not None and record.observations == dumped(detail="warm")


async def test_a_field_an_older_agent_left_out_is_its_default() -> None:
    old = {"7": {"vm_id": 7, "alive": True, "runner_online": True}}
    assert not observed.material_change(old, dumped())
    assert observed.material_change(old, dumped(job_finished=True))


async def test_the_wire_encodes_observations_as_the_store_does() -> None:
    seen = [
        wire.Observation(**SEEN, detail='a "quoted" ünïcode \u2028 line', kept_until=1e16),
        wire.Observation(vm_id=8, name="bm-8", alive=False, started_at=0.5, exit_code=-1),
    ]
    stored = {str(one.vm_id): one.model_dump() for one in seen}
    assert wire.encode_observations(seen) == observed.encode(stored)


async def test_a_stale_session_a_down_host_or_a_revoked_token_do_nothing(
    store: repository.Store,
) -> None:
    token = await store.add_host("h1", now=1.0)
    session = await store.hello("h1", report={}, observations={}, now=2.0)
    assert (
        await store.heartbeat(token, session=session + 1, observations=None, acks=[], now=3.0)
        is None
    )
    assert await store.mark_down("h1", reason="test", now=4.0)
    assert (
        await store.heartbeat(token, session=session, observations=None, acks=[], now=5.0) is None
    )
    record = await store.host("h1")
    assert record is not None and record.last_seen == 2.0
    assert await store.back_up("h1", session=session, now=6.0)
    assert await store.heartbeat(token, session=session, observations=None, acks=[], now=7.0)
    assert await store.revoke_host("h1", now=8.0)
    assert (
        await store.heartbeat(token, session=session, observations=None, acks=[], now=9.0) is None
    )


async def test_the_hosts_observations_are_decoded_again_only_when_they_changed(
    store: repository.Store,
) -> None:
    token = await store.add_host("h1", now=1.0)
    session = await store.hello("h1", report={}, observations=dumped(), now=2.0)
    first = (await store.hosts())[0].observations
    await store.heartbeat(token, session=session, observations=None, acks=[], now=3.0)
    assert (await store.hosts())[0].observations is first  # the same text: not decoded again
    noted = wire.encode_observations([wire.Observation(**SEEN, detail="warm")])
    await store.heartbeat(token, session=session, observations=noted, acks=[], now=4.0)
    again = (await store.hosts())[0]
    assert again.observations == dumped(detail="warm") and again.last_seen == 4.0
