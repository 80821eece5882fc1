"""Wake-ups between replicas: the API tells the leader at once that something was stored.

A notification says "look again", never what to do: the row it announces is already committed,
and the leader re-reads the store when woken. So a lost notification only delays the act to the
leader's next tick, and a spurious one costs one read; waiters always pass a timeout (their
tick) and treat both outcomes alike.

``LocalNotifier`` fans out within one process (SQLite: one box). ``PgNotifier`` uses
PostgreSQL's LISTEN/NOTIFY: one dedicated asyncpg connection listens, pinged every few seconds
(a partition shows as a ping timeout) and reconnected with back-off when it drops (a restart,
``pg_terminate_backend``); notifications sent while it was away are gone, so every subscriber is
woken once it listens again. ``publish`` sends ``pg_notify`` in its own transaction, right after
the caller's commit, and wakes this process's subscribers directly as well; a failure to send is
logged, not raised (the row is stored; the leader finds it by its tick).

Channels are per database, not per schema: ``prefix`` keeps deployments (and tests) that share a
database apart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any, Self

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from blacksmith_mini.woken import woken

log = logging.getLogger(__name__)

DELIVERIES = "deliveries"  # a webhook delivery was stored
INTENTS = "intents"  # an operator intent was stored
HOST_COMMANDS = "host_commands"  # a command for a host agent was stored
HOST_REPORTS = "host_reports"  # a host agent's heartbeat was stored
CHANNELS = (DELIVERIES, INTENTS, HOST_COMMANDS, HOST_REPORTS)
MAX_PAYLOAD_BYTES = 7999  # PostgreSQL refuses 8000 and more
KEPT_PAYLOADS = 1000  # per subscription, oldest dropped first


class Subscription:
    """Wakes its waiter when any of its channels is notified; ``close`` (or ``async with``)
    ends it."""

    def __init__(self, notifier: LocalNotifier, channels: tuple[str, ...]) -> None:
        self.channels = channels
        self._notifier = notifier
        self._event = asyncio.Event()
        self._payloads: collections.deque[tuple[str, str]] = collections.deque(maxlen=KEPT_PAYLOADS)

    def deliver(self, channel: str, payload: str) -> None:
        self._payloads.append((channel, payload))
        self._event.set()

    def wake(self) -> None:
        """A wake-up without a payload: something may have been missed, look again."""
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True once notified since the last ``wait`` returned (at once if so already); False
        when ``timeout`` seconds pass first."""
        if not await woken(self._event, timeout=timeout):  # at once when set already
            return False
        self._event.clear()
        return True

    def drain(self) -> list[tuple[str, str]]:
        """The (channel, payload) pairs received since the last drain (the newest
        ``KEPT_PAYLOADS``; wake-ups after a reconnection carry none)."""
        found = list(self._payloads)
        self._payloads.clear()
        return found

    def close(self) -> None:
        self._notifier.unsubscribe(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.close()


class LocalNotifier:
    """In-process fan-out: publishers and subscribers share this object."""

    def __init__(self, *, prefix: str = "") -> None:
        self.prefix = prefix
        self._subscriptions: dict[str, set[Subscription]] = {}

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(self, *channels: str) -> Subscription:
        """A subscription to ``channels``; it hears every notification published after this
        returns."""
        if not channels:
            raise ValueError("subscribe to at least one channel")
        subscription = Subscription(self, tuple(channels))
        for channel in channels:
            self._subscriptions.setdefault(channel, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        for channel in subscription.channels:
            self._subscriptions.get(channel, set()).discard(subscription)

    async def publish(self, channel: str, payload: str = "") -> None:
        """Wake the channel's subscribers (call it after the announced row is committed)."""
        _check_payload(payload)
        self._fan_out(channel, payload)

    def _fan_out(self, channel: str, payload: str) -> None:
        for subscription in list(self._subscriptions.get(channel, ())):
            subscription.deliver(channel, payload)

    def _wake_all(self) -> None:
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.wake()


class PgNotifier(LocalNotifier):
    """LISTEN/NOTIFY over PostgreSQL, with local fan-out; ``start`` it before subscribing."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        prefix: str = "",
        ping_interval: float = 5.0,
        timeout: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        super().__init__(prefix=prefix)
        self._engine = engine
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._ping_interval = ping_interval
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._connection: Any = None  # the listening asyncpg connection, while it is up
        self._listening: set[str] = set()
        self._lock = asyncio.Lock()  # one operation at a time on the connection
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.1
        self._up = asyncio.Event()  # set while the listening connection is up
        self.connections = 0  # how many times it (re)connected; tests and status read it

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening connection (None while disconnected)."""
        connection = self._connection
        return int(connection.get_server_pid()) if connection is not None else None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-listen")

    async def wait_connected(self, timeout: float) -> bool:
        """True once the listening connection is up (False after ``timeout`` seconds)."""
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def subscribe(self, *channels: str) -> Subscription:
        subscription = await super().subscribe(*channels)
        async with self._lock:
            for channel in channels:
                if channel in self._listening:
                    continue
                self._listening.add(channel)
                if self._connection is not None:
                    try:
                        await self._listen(self._connection, channel)
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        log.warning("LISTEN %s failed (%s); reconnecting", channel, exc)
                        self._connection.terminate()  # the supervisor reconnects, wakes all
        return subscription

    async def publish(self, channel: str, payload: str = "") -> None:
        _check_payload(payload)
        self._fan_out(channel, payload)
        try:
            async with self._engine.connect() as connection:
                await connection.execute(select(func.pg_notify(self.prefix + channel, payload)))
                await connection.commit()
        except (SQLAlchemyError, OSError) as exc:
            log.warning(
                "could not notify %s (the leader sees it at its next tick): %s", channel, exc
            )

    # --- the listening connection ----------------------------------------------------------

    async def _listen(self, connection: Any, channel: str) -> None:
        await asyncio.wait_for(
            connection.add_listener(self.prefix + channel, self._on_notification), self._timeout
        )

    def _on_notification(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        if channel.startswith(self.prefix):
            self._fan_out(channel[len(self.prefix) :], payload)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_until_lost()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection lost (%s); retrying in %.1f s", exc, self._backoff)
            except Exception:  # never let the listener die: waiters would only time out
                log.exception("LISTEN connection failed; retrying in %.1f s", self._backoff)
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, self._max_backoff)

    async def _listen_until_lost(self) -> None:
        """Connect, LISTEN on every channel, wake everyone, and watch the connection."""
        connection: Any = None
        try:
            connection = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout,
                server_settings={"application_name": "blacksmith-mini-listen"},
            )
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _c: lost.set())
            async with self._lock:
                for channel in sorted(self._listening):
                    await self._listen(connection, channel)
                self._connection = connection
            self._up.set()
            self.connections += 1
            self._backoff = 0.1
            self._wake_all()  # what was sent while we were away is not coming
            await self._watch(connection, lost)
        finally:
            self._connection = None
            self._up.clear()
            if connection is not None:
                connection.terminate()

    async def _watch(self, connection: Any, lost: asyncio.Event) -> None:
        """Return when the connection is lost (closed, or a ping not answered in time)."""
        while not connection.is_closed():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self._ping_interval)
            if lost.is_set() or connection.is_closed():
                return
            async with self._lock:
                await asyncio.wait_for(connection.fetchval("SELECT 1"), self._timeout)


def notifier_for(engine: AsyncEngine, *, prefix: str = "") -> LocalNotifier:
    """LISTEN/NOTIFY on PostgreSQL; in-process fan-out otherwise (one box)."""
    if engine.dialect.name == "postgresql":
        return PgNotifier(engine, prefix=prefix)
    return LocalNotifier(prefix=prefix)


def _check_payload(payload: str) -> None:
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"notification payloads hold at most {MAX_PAYLOAD_BYTES} bytes")
