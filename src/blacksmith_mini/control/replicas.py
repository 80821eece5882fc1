"""Control-plane replicas on one PostgreSQL: who leads the loop, and the news between them.

Every replica serves the API, webhooks and the dashboard. One holds the ``loop`` lease
(``store.lease``) and runs the loop through a fenced view of the store, so a deposed leader's
late write fails instead of landing; the others follow (their view is reloaded from the store
every tick). When the leader dies its lease lapses and another replica is elected within
about ``ttl + 2`` seconds (10 s lease: under 15 s). News travels by LISTEN/NOTIFY
(``store.notify``): a stored webhook delivery or operator intent wakes the leader at once,
and host commands and reports wake whichever replica holds the agent's long poll. On SQLite
(one box) the same code runs with a lease that is always held and in-process news.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from blacksmith_mini.control import leadership as leadership_mod
from blacksmith_mini.control import reconciler
from blacksmith_mini.store import lease as lease_mod
from blacksmith_mini.store import notify
from blacksmith_mini.vm.remote import wakeups

log = logging.getLogger(__name__)


class SharedWakeups(wakeups.LocalWakeups):
    """Host-command and report wake-ups shared by every replica through the notifier."""

    def __init__(self, notifier: notify.LocalNotifier) -> None:
        super().__init__()
        self.notifier = notifier
        self._sends: set[asyncio.Task[None]] = set()

    def publish(self, channel: str) -> None:
        super().publish(channel)
        task = asyncio.get_running_loop().create_task(self.notifier.publish(channel))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def heard(self, channel: str) -> None:
        """Another replica published ``channel``: wake local waiters, do not send it back."""
        super().publish(channel)


class Replica:
    """This process's part: lead the loop when elected, follow it otherwise."""

    def __init__(
        self,
        *,
        loop: reconciler.Reconciler,
        leader: leadership_mod.Leader,
        notifier: notify.LocalNotifier,
        shared: SharedWakeups | None,
    ) -> None:
        self.loop = loop
        self.leader = leader
        self.notifier = notifier
        self.shared = shared
        self._relay: asyncio.Task[None] | None = None
        self._changes = asyncio.Lock()

    async def start(self) -> None:
        await self.notifier.start()
        channels = [notify.DELIVERIES, notify.INTENTS]
        if self.shared is not None:
            channels += [wakeups.COMMANDS, wakeups.REPORTS, wakeups.CHANGES]
        subscription = await self.notifier.subscribe(*channels)
        self._relay = asyncio.create_task(self._listen(subscription), name="replica-news")
        self.leader.start()

    async def elected(self, lease: lease_mod.Lease | None) -> None:
        async with self._changes:
            log.info("elected to lead the loop (fencing token %s)", lease.token if lease else "-")
            await self.loop.lead()

    async def deposed(self) -> None:
        async with self._changes:
            log.warning("no longer leading the loop: following")
            await self.loop.follow()

    async def _listen(self, subscription: notify.Subscription) -> None:
        while True:
            await subscription.wait(5.0)
            for channel, _payload in subscription.drain():
                if channel == notify.DELIVERIES:
                    self.loop.deliveries_arrived()
                elif channel == notify.INTENTS:
                    self.loop.intents_changed()
                elif self.shared is not None:
                    self.shared.heard(channel)

    async def stop(self) -> None:
        await self.leader.stop()
        if self._relay is not None:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
        await self.notifier.close()

    async def announce(self, channel: str) -> None:
        """Tell every replica (this one included) that something was stored on ``channel``."""
        await self.notifier.publish(channel)
