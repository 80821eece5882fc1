"""The garbage collector paused around work that builds many short-lived, acyclic objects.

Reference counting frees what such work drops; left on, the collector passes again and again
over what the work is still building (all of it young), promotes it as it goes and so brings
the next full collection, a pause over every object the process holds, much sooner. Used
around an event-stream frame (``api/stream_publisher``) and around a tick's queue sync and
``plan()`` (``control/reconciler``), whose measured costs (``bench/event_stream_bench.py``,
``bench/hosts_bench.py``) are taken the same way.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No collection inside the block; the collector is on again after it (if it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
