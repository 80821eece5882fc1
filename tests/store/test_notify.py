"""Notifications wake subscribers: in process, and across connections through PostgreSQL."""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.store import notify

pytestmark = pytest.mark.anyio
PG_URL = os.environ.get("BLACKSMITH_TEST_DATABASE_URL")
WAIT = 15.0  # bound on every wait that should succeed


# --- in process ----------------------------------------------------------------------------


async def test_publish_wakes_the_channels_subscribers_only() -> None:
    notifier = notify.LocalNotifier()
    loop_sub = await notifier.subscribe(notify.DELIVERIES, notify.INTENTS)
    hosts_sub = await notifier.subscribe(notify.HOST_REPORTS)
    await notifier.publish(notify.DELIVERIES, "d1")
    await notifier.publish(notify.INTENTS, "drain")
    assert await loop_sub.wait(WAIT)
    assert loop_sub.drain() == [(notify.DELIVERIES, "d1"), (notify.INTENTS, "drain")]
    assert not await loop_sub.wait(0.01)  # consumed: the next wait times out
    assert not await hosts_sub.wait(0.01) and hosts_sub.drain() == []


async def test_a_closed_subscription_hears_nothing() -> None:
    notifier = notify.LocalNotifier()
    async with await notifier.subscribe(notify.DELIVERIES) as sub:
        pass
    await notifier.publish(notify.DELIVERIES, "late")
    assert sub.drain() == [] and not await sub.wait(0.01)


async def test_payloads_are_bounded_and_the_sqlite_notifier_is_local(
    tmp_path: pathlib.Path,
) -> None:
    notifier = notify.LocalNotifier()
    with pytest.raises(ValueError, match="at most"):
        await notifier.publish(notify.DELIVERIES, "x" * 8000)
    engine = engine_mod.create_engine(f"sqlite:///{tmp_path}/n.db")
    try:
        assert type(notify.notifier_for(engine)) is notify.LocalNotifier
    finally:
        await engine.dispose()


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture
async def engines() -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines: the leader's and another replica's."""
    if not PG_URL:
        pytest.skip("PostgreSQL notify tests need BLACKSMITH_TEST_DATABASE_URL (.ci/run sets it)")
    first, second = engine_mod.create_engine(PG_URL), engine_mod.create_engine(PG_URL)
    yield first, second
    await first.dispose()
    await second.dispose()


@pytest.fixture
def prefix() -> str:
    """Channels are per database: each test gets its own."""
    return f"t{uuid.uuid4().hex[:10]}_"


async def _listening(engine: AsyncEngine, prefix: str) -> notify.PgNotifier:
    notifier = notify.PgNotifier(engine, prefix=prefix, ping_interval=0.2, max_backoff=0.5)
    await notifier.start()
    assert await notifier.wait_connected(WAIT)
    return notifier


async def test_notify_wakes_a_listener_on_another_connection(
    engines: tuple[AsyncEngine, AsyncEngine], prefix: str
) -> None:
    leader_engine, api_engine = engines
    assert type(notify.notifier_for(leader_engine)) is notify.PgNotifier
    leader = await _listening(leader_engine, prefix)
    try:
        sub = await leader.subscribe(notify.DELIVERIES, notify.INTENTS)
        api = notify.PgNotifier(api_engine, prefix=prefix)  # publishing needs no listener
        await api.publish(notify.DELIVERIES, "d1")
        await api.publish(notify.INTENTS, "pause")
        heard: list[tuple[str, str]] = []
        while len(heard) < 2:
            assert await sub.wait(WAIT)
            heard += sub.drain()
        assert heard == [(notify.DELIVERIES, "d1"), (notify.INTENTS, "pause")]
    finally:
        await leader.close()


async def test_other_prefixes_are_not_heard(
    engines: tuple[AsyncEngine, AsyncEngine], prefix: str
) -> None:
    leader_engine, api_engine = engines
    leader = await _listening(leader_engine, prefix)
    try:
        sub = await leader.subscribe(notify.DELIVERIES)
        await notify.PgNotifier(api_engine, prefix="other_").publish(notify.DELIVERIES, "no")
        await notify.PgNotifier(api_engine, prefix=prefix).publish(notify.DELIVERIES, "yes")
        assert await sub.wait(WAIT)  # notifications arrive in commit order: "no" came first
        assert sub.drain() == [(notify.DELIVERIES, "yes")]
    finally:
        await leader.close()


async def test_a_listener_survives_a_dropped_connection(
    engines: tuple[AsyncEngine, AsyncEngine], prefix: str
) -> None:
    leader_engine, api_engine = engines
    leader = await _listening(leader_engine, prefix)
    api = notify.PgNotifier(api_engine, prefix=prefix)
    try:
        sub = await leader.subscribe(notify.DELIVERIES)
        old_pid = leader.backend_pid
        async with api_engine.connect() as connection:
            assert await connection.scalar(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid}
            )
        await api.publish(notify.DELIVERIES, "maybe lost")  # sent while it may be away
        assert await sub.wait(WAIT)  # heard, or woken by the reconnection: never silent
        while leader.connections < 2:  # bounded: every wait below ends within WAIT
            assert await sub.wait(WAIT)
        assert leader.connected and leader.backend_pid != old_pid
        sub.drain()
        await api.publish(notify.DELIVERIES, "after")
        assert await sub.wait(WAIT)
        assert (notify.DELIVERIES, "after") in sub.drain()
    finally:
        await leader.close()
    assert not leader.connected
