"""Process helpers: identity from /proc (pid + start time, against pid reuse), group kills, search.

A VM's processes are identified by the supervisor's pid *and* its start time in clock ticks
(field 22 of ``/proc/<pid>/stat``), so a recycled pid is never mistaken for a VM after a
control-plane restart. ``find_by_cmdline`` lets the sweep find supervisors and Firecracker
processes of ours that no state record knows about.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

PROC = Path("/proc")


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])  # field 22 overall; fields[0] is field 3 (state)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def is_alive(pid: int | None, ticks: int | None) -> bool:
    """Whether the process ``pid`` that started at ``ticks`` still runs (zombies count as dead)."""
    if pid is None:
        return False
    now = start_ticks(pid)
    if now is None or (ticks is not None and now != ticks):
        return False
    return not is_zombie(pid)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    """Signal a whole process group (never our own); True if it existed."""
    if pgid <= 1 or pgid == os.getpgrp():
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def cmdline(pid: int) -> list[str]:
    """The argument list of ``pid`` ([] when gone or unreadable)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pids() -> Iterator[int]:
    """Every pid currently in /proc."""
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def find_by_cmdline(*needles: str) -> list[tuple[int, list[str]]]:
    """Processes whose argument list contains every one of ``needles`` (as substrings)."""
    me = os.getpid()
    found: list[tuple[int, list[str]]] = []
    for pid in pids():
        if pid == me:
            continue
        args = cmdline(pid)
        joined = "\0".join(args)
        if args and all(needle in joined for needle in needles):
            found.append((pid, args))
    return found


def pgid_of(pid: int) -> int | None:
    """The process group of ``pid``, or None if it is gone."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
