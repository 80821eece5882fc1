"""A loop waiting on its wake event stops when cancelled right after being woken.

Stopping a loop wakes it, then cancels it. With ``asyncio.wait_for`` on Python 3.11 that
cancellation is lost when it meets the wake (the inner wait completed first): the loop runs
on and whoever awaits it hangs (a follower replica's stop took its whole 34 s bound in the
rolling-restart scenario). ``woken`` lets it through.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

import pytest

from blacksmith_mini.woken import woken

pytestmark = pytest.mark.anyio


async def old_way(event: asyncio.Event, *, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


async def stops_when_woken_then_cancelled(
    wait: Callable[..., Awaitable[bool]],
) -> bool:
    event, waiting = asyncio.Event(), asyncio.Event()
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            waiting.set()  # it runs on into ``wait`` before the test resumes
            await wait(event, timeout=0.5)
            event.clear()
            turns += 1

    task = asyncio.create_task(loop())
    await waiting.wait()
    event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    if not done:
        task.cancel()  # the cancellation was lost: stop it again
        await asyncio.wait([task])
    return bool(done) and task.cancelled() and turns == 0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_cancel_that_meets_a_wake_stops_the_loop() -> None:
    assert await stops_when_woken_then_cancelled(woken)


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps the cancel since 3.12")
async def test_wait_for_on_python_3_11_loses_it() -> None:
    """What ``woken`` guards against (so the test above can fail)."""
    assert not await stops_when_woken_then_cancelled(old_way)


async def test_woken_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert not await woken(event, timeout=0.01)
    event.set()
    assert await woken(event, timeout=0.01)
