"""Wake-ups between the agent routes and the remote driver: a counter per channel.

``publish(channel)`` bumps the channel's counter and wakes its waiters; ``wait(channel,
after=n, timeout=t)`` returns as soon as the counter passes ``n`` (or after ``t`` seconds), so a
publish between reading the counter and waiting is never missed. This in-process version
serves one box and one replica; with several replicas the same calls are fed by PostgreSQL's
LISTEN/NOTIFY, and every waiter also re-reads the database when its timeout ends, so a lost
notification delays, never loses, a command.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

COMMANDS = "host_commands"
REPORTS = "host_reports"  # a report was stored (acknowledgements may have arrived)
CHANGES = "host_changes"  # a report changed what the loop acts on


class Wakeups(Protocol):
    def counter(self, channel: str) -> int: ...

    def publish(self, channel: str) -> None: ...

    async def wait(self, channel: str, *, after: int, timeout: float) -> int: ...


class LocalWakeups:
    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._conditions: dict[str, asyncio.Condition] = {}

    def counter(self, channel: str) -> int:
        return self._counters.get(channel, 0)

    def publish(self, channel: str) -> None:
        self._counters[channel] = self.counter(channel) + 1
        condition = self._conditions.get(channel)
        if condition is not None:
            asyncio.get_running_loop().create_task(self._notify(condition))

    async def _notify(self, condition: asyncio.Condition) -> None:
        async with condition:
            condition.notify_all()

    async def wait(self, channel: str, *, after: int, timeout: float) -> int:
        condition = self._conditions.setdefault(channel, asyncio.Condition())
        with contextlib.suppress(TimeoutError):
            async with condition:
                await asyncio.wait_for(
                    condition.wait_for(lambda: self.counter(channel) > after), timeout=timeout
                )
        return self.counter(channel)
