"""A VM's console file: bounded on disk, scanned incrementally for the runner's status lines."""

from __future__ import annotations

import dataclasses
import pathlib
import re

ONLINE = re.compile(rb"Listening for Jobs")
JOB_STARTED = re.compile(rb"Running job: ")
JOB_FINISHED = re.compile(rb"Job .* completed with result: ")


@dataclasses.dataclass
class ConsoleScan:
    """What the runner has said so far, and how far we have read."""

    offset: int = 0
    runner_online: bool = False
    job_started: bool = False
    job_finished: bool = False
    tail: bytes = b""  # the last partial line, kept until its end arrives

    def feed(self, chunk: bytes) -> bool:
        """Scan new output; True when a status flag changed."""
        data = self.tail + chunk
        lines, _, self.tail = data.rpartition(b"\n")
        before = (self.runner_online, self.job_started, self.job_finished)
        self.runner_online = self.runner_online or bool(ONLINE.search(lines))
        self.job_started = self.job_started or bool(JOB_STARTED.search(lines))
        self.job_finished = self.job_finished or bool(JOB_FINISHED.search(lines))
        return before != (self.runner_online, self.job_started, self.job_finished)


def scan(path: pathlib.Path, state: ConsoleScan, *, max_bytes: int) -> bool:
    """Read what was appended since the last scan; keep the file under ``max_bytes``.

    The runner writes with O_APPEND, so when the file passes the bound its newest half is kept
    in ``<name>.prev`` and the file is truncated; the writer carries on at the new end.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size < state.offset:
        state.offset = 0
    changed = False
    if size > state.offset:
        with path.open("rb") as handle:
            handle.seek(state.offset)
            chunk = handle.read(size - state.offset)
        state.offset += len(chunk)
        changed = state.feed(chunk)
    if size > max_bytes:
        with path.open("rb") as handle:
            handle.seek(max(0, size - max_bytes // 2))
            keep = handle.read()
        path.with_suffix(".prev").write_bytes(keep)
        with path.open("r+b") as handle:
            handle.truncate(0)
        state.offset = 0
    return changed


def tail(path: pathlib.Path, *, max_bytes: int) -> str:
    """The last ``max_bytes`` of the console, across the kept previous part."""
    parts = []
    for candidate in (path.with_suffix(".prev"), path):
        try:
            parts.append(candidate.read_bytes())
        except FileNotFoundError:
            continue
    return b"".join(parts)[-max_bytes:].decode("utf-8", errors="replace")
