"""What ``cache_bench`` measures besides the transfers: the disk's own sequential write and
cold read (the physical limit), dropping a file's pages, and a process's peak ``VmRSS``."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

MB = 1_000_000
BLOCK = 1 << 20


def disk_baseline(directory: Path, size: int) -> tuple[float, float]:
    """Sequential write (with fsync) and cold read of ``size`` bytes, in MB/s."""
    path = directory / "disk-baseline.bin"
    block = os.urandom(BLOCK)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(fd, block[: min(BLOCK, size - written)])
        os.fsync(fd)
    finally:
        os.close(fd)
    write = size / MB / (time.perf_counter() - started)
    drop_pages(path)
    started = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.read(fd, BLOCK):
            pass
    finally:
        os.close(fd)
    read = size / MB / (time.perf_counter() - started)
    path.unlink()
    return write, read


def drop_pages(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """Peak ``VmRSS`` of a process while the ``with`` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
