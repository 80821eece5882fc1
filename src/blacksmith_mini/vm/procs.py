"""Process helpers shared by drivers: identity that survives pid reuse, group signals."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks (``/proc/PID/stat`` field 22), or None if gone
    or a zombie. Together with the pid it identifies a process across pid reuse."""
    try:
        raw = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    after_name = raw.rsplit(")", 1)[1].split()
    if after_name[0] in ("Z", "X"):
        return None
    return int(after_name[19])


def is_same_process(pid: int, ticks: int | None) -> bool:
    current = start_ticks(pid)
    return current is not None and (ticks is None or current == ticks)


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to a process group; False when it no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
