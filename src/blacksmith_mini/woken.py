"""Waiting for an ``asyncio.Event`` with a timeout, without losing a cancellation.

On Python 3.11, ``asyncio.wait_for`` returns the inner result when a cancellation arrives
just as the inner wait completes (python/cpython#86296, fixed in 3.12): a task looping on
``wait_for(event.wait(), timeout)`` that is cancelled right after the event is set (as a
loop is stopped: wake it, then cancel it) goes on running, and whoever awaits it waits
forever. ``asyncio.timeout`` raises ``TimeoutError`` only for its own deadline and lets any
other cancellation through.
"""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, *, timeout: float) -> bool:
    """Wait until ``event`` is set (True) or ``timeout`` seconds pass (False)."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
