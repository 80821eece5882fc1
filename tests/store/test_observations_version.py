"""A host's observations' version (``hosts.observations_version``), on SQLite and PostgreSQL.

Every way a host's observations are written moves it by one (hello, a report checked whole,
a change of the version this replica checked, alone or in a group, an old SQLite's
statement each); ``hosts()`` reads and decodes again only the hosts whose version moved, so
a tick where nothing changed reads no observations at all; a host removed and added again
under its name is read afresh; on PostgreSQL a write that does not move the version (a
replica of the version before, during a rolling upgrade) is moved by the trigger; a host
stored before the version existed is read.
"""

from __future__ import annotations

import re

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, select, text, update

from blacksmith_mini.store import beatgroup, engine, observed, repository
from blacksmith_mini.store.tables import HostRow
from store.test_heartbeat_deltas import connected, delta, seen

pytestmark = pytest.mark.anyio


async def version_of(store: repository.Store, name: str) -> int:
    async with store.engine.connect() as connection:
        found = await connection.scalar(
            select(HostRow.observations_version).where(HostRow.name == name)
        )
    assert found is not None
    return int(found)


def statements(store: repository.Store) -> list[str]:
    sent: list[str] = []
    event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    return sent


@pytest.mark.parametrize("one_statement", [True, False])
async def test_every_write_of_observations_moves_the_version_by_one(
    store: repository.Store, one_statement: bool
) -> None:
    token = await store.add_host("h1", now=1.0)
    assert await version_of(store, "h1") == 0
    session = await store.hello("h1", report={}, observations={"7": seen(7)}, now=2.0)
    assert await version_of(store, "h1") == 1
    whole = observed.encode({"7": seen(7), "8": seen(8)})
    beat = await store.heartbeat(token, session=session, observations=whole, acks=[], now=3.0)
    assert beat is not None and await version_of(store, "h1") == 2  # the checked way
    store._group = beatgroup.BeatGroup(store.engine, one_statement=one_statement)
    change = delta(beat.observed, seen(9))
    known = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.0, delta=change
    )
    assert known is not None and not known.resend
    assert await version_of(store, "h1") == 3  # the known way, as a group writes it
    same = await store.heartbeat(token, session=session, observations=None, acks=[], now=5.0)
    assert same is not None and await version_of(store, "h1") == 3  # a stamp writes none


async def test_hosts_reads_again_only_the_hosts_whose_version_moved(
    store: repository.Store,
) -> None:
    token, session, version = await connected(store)  # h1
    await store.add_host("h2", now=1.0)
    await store.hello("h2", report={}, observations={"5": seen(5)}, now=2.0)
    first = {host.name: host for host in await store.hosts()}
    assert first["h1"].observations == {"7": seen(7), "8": seen(8)}
    sent = statements(store)
    again = {host.name: host for host in await store.hosts()}
    assert len(sent) == 1 and not re.search(r"hosts\.observations(?!_version)", sent[0])
    assert again["h2"].observations is first["h2"].observations  # not decoded again
    sent.clear()
    beat = await store.heartbeat(
        token, session=session, observations=None, acks=[], now=4.0, delta=delta(version, seen(9))
    )
    assert beat is not None and not beat.resend
    sent.clear()
    moved = {host.name: host for host in await store.hosts()}
    assert len(sent) == 2, sent  # the hosts, then the observations of the one that moved
    assert moved["h1"].observations == {"7": seen(7), "8": seen(8), "9": seen(9)}
    assert moved["h2"].observations is first["h2"].observations


async def test_a_host_removed_and_added_again_is_read_afresh(store: repository.Store) -> None:
    await store.add_host("h1", now=1.0)
    await store.hello("h1", report={}, observations={"7": seen(7)}, now=2.0)
    assert [host.observations for host in await store.hosts()] == [{"7": seen(7)}]
    await store.remove_host("h1")  # and added again before the loop looks: the same version
    await store.add_host("h1", now=3.0)
    await store.hello("h1", report={}, observations={"4": seen(4)}, now=4.0)
    assert await version_of(store, "h1") == 1
    assert [host.observations for host in await store.hosts()] == [{"4": seen(4)}]
    await store.remove_host("h1")
    assert await store.hosts() == []
    assert "h1" not in store._read and "h1" not in store._decoded


async def test_a_write_that_does_not_move_the_version_is_moved_on_postgresql(
    store: repository.Store,
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("replicas of two versions share only PostgreSQL; SQLite is one process")
    await store.add_host("h1", now=1.0)
    await store.hello("h1", report={}, observations={"7": seen(7)}, now=2.0)
    assert [host.observations for host in await store.hosts()] == [{"7": seen(7)}]
    async with store.engine.begin() as connection:  # as a replica of the version before
        await connection.execute(update(HostRow).values(observations={"8": seen(8)}))
    assert await version_of(store, "h1") == 2
    assert [host.observations for host in await store.hosts()] == [{"8": seen(8)}]


async def test_a_host_stored_before_the_version_is_read(store: repository.Store) -> None:
    """A database of revision 0003 with a host's observations, migrated: version 0, read."""
    async with store.engine.begin() as connection:
        await connection.run_sync(lambda sync: _to_revision(sync, "0003"))
        await connection.execute(
            text(
                "INSERT INTO hosts (name, token_hash, created_at, admin_state, session, report,"
                " observations) VALUES ('old', 'x', 1.0, 'up', 1, '{}', '{\"3\": {\"vm_id\": 3}}')"
            )
        )
    await store.open()  # as the first replica of the new version migrates
    assert await version_of(store, "old") == 0
    assert [host.observations for host in await store.hosts()] == [{"3": {"vm_id": 3}}]


def _to_revision(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(engine.MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.downgrade(config, revision)
