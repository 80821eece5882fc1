"""The loop's share of a core when it is woken often: a rest owed after each tick.

Every driver change, delivery or intent wakes the loop at once, and at 10,000 VMs a tick
computes for tens of milliseconds (the plan, the view). Under churn, wakes come faster than
that (a host's report every 50 ms at 100 hosts), so the loop would tick back to back, hold a
core, and starve the API, heartbeats and the event stream that share its thread. After a
tick that computed ``c`` seconds (its synchronous parts only: waiting on GitHub or the
database is not computing), the next tick waits ``c * (1 / duty - 1)``: the loop computes at
most ``duty`` of the time. A fleet whose ticks compute 2 ms waits 2 ms (duty 0.5); a timer
tick a second later owes nothing more. ``duty`` 1 turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator


def rest_after(computed: float, *, duty: float) -> float:
    """Seconds to rest after computing ``computed`` seconds, to compute at most ``duty``."""
    if duty >= 1.0 or computed <= 0.0:
        return 0.0
    return computed * (1.0 / duty - 1.0)


class Pacer:
    """The computing of the tick under way, and the rest it owes before the next."""

    def __init__(
        self,
        *,
        duty: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 0.0 < duty <= 1.0:
            raise ValueError(f"the loop's duty must be in (0, 1], not {duty}")
        self.duty = duty
        self.computed = 0.0
        self._sleep, self._clock = sleep, clock

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        """Count the block (synchronous: nothing else runs meanwhile) as the tick's computing."""
        started = self._clock()
        try:
            yield
        finally:
            self.computed += self._clock() - started

    async def rest(self) -> None:
        """Rest what the last tick owes (nothing at duty 1), then start counting afresh."""
        owed = rest_after(self.computed, duty=self.duty)
        self.computed = 0.0
        if owed > 0.0:
            await self._sleep(owed)
