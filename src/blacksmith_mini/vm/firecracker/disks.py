"""Per-VM copy-on-write root disks and the free-space check that guards every start.

Strategies are pluggable (``RootfsStrategy``): ``reflink`` shares the base image's blocks through
the FICLONE ioctl (XFS with reflink, btrfs; instant, no space used until the guest writes),
``sparse-copy`` copies only the data extents (SEEK_DATA/SEEK_HOLE, zero blocks skipped), and
``auto`` tries a reflink and falls back to a sparse copy where the filesystem refuses.

The driver clones through :func:`clone_off_loop`: the copy (seconds for a multi-GB image without
reflinks) runs in a worker thread, under a temporary name renamed into place only when complete,
and a cancellation stops the thread within one chunk and removes the partial file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import fcntl
import io
import os
import shutil
import threading
from pathlib import Path
from typing import Protocol

FICLONE = 0x40049409  # _IOW(0x94, 9, int)
CHUNK = 1 << 20
_REFLINK_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}
PARTIAL_SUFFIX = ".partial"


class DiskError(Exception):
    """A disk could not be prepared; the text names the fix."""


class CopyCancelled(Exception):
    """The clone was cancelled between two chunks; the partial file is removed."""


class RootfsStrategy(Protocol):
    """Makes ``dst`` a private, writable copy of ``src``."""

    name: str

    def clone(self, *, src: Path, dst: Path, cancel: threading.Event | None = None) -> None:
        """Create ``dst`` (must not exist) from ``src``; stop with CopyCancelled once ``cancel``
        is set."""

    def space_needed(self, src: Path) -> int:
        """Bytes this strategy may consume up front for one clone of ``src``."""


class ReflinkStrategy:
    """FICLONE: the copy shares every block with the base until written."""

    name = "reflink"

    def clone(self, *, src: Path, dst: Path, cancel: threading.Event | None = None) -> None:
        with src.open("rb") as fin, _create(dst) as fout:
            try:
                fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            except OSError as exc:
                dst.unlink(missing_ok=True)
                raise DiskError(
                    f"reflink of {src} to {dst} failed ({os.strerror(exc.errno or 0)}): the "
                    "data directory must be on XFS (reflink=1) or btrfs, on the same filesystem "
                    'as the base image; or set [vm.firecracker] rootfs_strategy = "sparse-copy"'
                ) from exc

    def space_needed(self, src: Path) -> int:
        return 0


class SparseCopyStrategy:
    """Copy the data extents only; holes and all-zero chunks stay holes."""

    name = "sparse-copy"

    def clone(self, *, src: Path, dst: Path, cancel: threading.Event | None = None) -> None:
        size = src.stat().st_size
        try:
            with src.open("rb") as fin, _create(dst) as fout:
                for start, end in _data_extents(fin.fileno(), size):
                    fin.seek(start)
                    pos = start
                    while pos < end:
                        if cancel is not None and cancel.is_set():
                            raise CopyCancelled(f"copy of {src} to {dst} cancelled")
                        chunk = fin.read(min(CHUNK, end - pos))
                        if not chunk:
                            break
                        if chunk.count(0) != len(chunk):
                            fout.seek(pos)
                            fout.write(chunk)
                        pos += len(chunk)
                fout.truncate(size)
        except BaseException:
            dst.unlink(missing_ok=True)
            raise

    def space_needed(self, src: Path) -> int:
        return src.stat().st_blocks * 512


class AutoStrategy:
    """Reflink where the filesystem can, sparse copy elsewhere."""

    name = "auto"

    def __init__(self) -> None:
        self.last_used: str | None = None

    def clone(self, *, src: Path, dst: Path, cancel: threading.Event | None = None) -> None:
        if try_reflink(src=src, dst=dst):
            self.last_used = ReflinkStrategy.name
            return
        SparseCopyStrategy().clone(src=src, dst=dst, cancel=cancel)
        self.last_used = SparseCopyStrategy.name

    def space_needed(self, src: Path) -> int:
        return SparseCopyStrategy().space_needed(src)  # worst case


def try_reflink(*, src: Path, dst: Path) -> bool:
    """Reflink ``src`` to ``dst``; False (and no ``dst``) where the filesystem can't."""
    with src.open("rb") as fin, _create(dst) as fout:
        try:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
            return True
        except OSError as exc:
            if exc.errno not in _REFLINK_UNSUPPORTED:
                dst.unlink(missing_ok=True)
                raise
    dst.unlink(missing_ok=True)
    return False


def strategy(name: str) -> RootfsStrategy:
    """The strategy called ``name`` (``reflink``, ``sparse-copy`` or ``auto``)."""
    strategies: dict[str, type[RootfsStrategy]] = {
        "reflink": ReflinkStrategy,
        "sparse-copy": SparseCopyStrategy,
        "auto": AutoStrategy,
    }
    try:
        return strategies[name]()
    except KeyError:
        raise ValueError(f"unknown rootfs strategy {name!r}") from None


def check_free_space(*, directory: Path, needed_bytes: int, min_free_mib: int) -> None:
    """Raise DiskError unless ``directory`` keeps ``min_free_mib`` free after ``needed_bytes``."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    required = needed_bytes + min_free_mib * 1024 * 1024
    if free < required:
        raise DiskError(
            f"not enough disk space in {directory}: {free // 2**20} MiB free, "
            f"{required // 2**20} MiB needed ({needed_bytes // 2**20} MiB for the VM disk + "
            f"min_free_disk_mib={min_free_mib}). Free space there (old VM disks are swept at "
            'start-up), use rootfs_strategy = "reflink" on XFS/btrfs, or lower '
            "[vm.firecracker] min_free_disk_mib"
        )


def partial_path(dst: Path) -> Path:
    """Where :func:`clone_off_loop` writes ``dst`` until the copy is complete."""
    return dst.with_name(dst.name + PARTIAL_SUFFIX)


def clone_to_place(
    strategy: RootfsStrategy, *, src: Path, dst: Path, cancel: threading.Event | None = None
) -> str:
    """Clone ``src`` to a temporary name beside ``dst``, then rename it to ``dst`` (blocking).

    Returns the strategy actually used (``auto`` reports ``reflink`` or ``sparse-copy``).
    """
    if dst.exists():
        raise DiskError(f"VM disk {dst} already exists: release the VM first")
    partial = partial_path(dst)
    partial.unlink(missing_ok=True)  # left by a crash mid-copy
    try:
        strategy.clone(src=src, dst=partial, cancel=cancel)
        os.rename(partial, dst)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return getattr(strategy, "last_used", None) or strategy.name


async def clone_off_loop(strategy: RootfsStrategy, *, src: Path, dst: Path) -> str:
    """:func:`clone_to_place` in a worker thread; cancelling stops the copy and leaves no file.

    On cancellation the thread is told to stop and is waited for (it notices within one 1 MiB
    chunk), so neither ``dst`` nor its temporary exist once the cancellation propagates.
    """
    cancel = threading.Event()
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rootfs-clone")
    work = pool.submit(clone_to_place, strategy, src=src, dst=dst, cancel=cancel)
    try:
        return await asyncio.wrap_future(work)
    except BaseException:
        cancel.set()
        concurrent.futures.wait([work], timeout=30)  # one chunk: milliseconds
        partial_path(dst).unlink(missing_ok=True)
        if not work.done() or work.exception() is None:
            dst.unlink(missing_ok=True)  # renamed just before the cancel arrived
        raise
    finally:
        pool.shutdown(wait=False)


def remove(path: Path) -> bool:
    """Delete a VM disk and any partial copy of it; True if something was removed."""
    removed = False
    for candidate in (path, partial_path(path)):
        try:
            candidate.unlink()
            removed = True
        except FileNotFoundError:
            pass
    return removed


def _create(path: Path) -> io.BufferedWriter:
    """Open a new file for writing; fails if it exists (a clone never overwrites)."""
    return path.open("xb")


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of every data region, from SEEK_DATA/SEEK_HOLE, or the whole file."""
    extents: list[tuple[int, int]] = []
    pos = 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after pos
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            extents.append((start, end))
            pos = end
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return [(0, size)]
        raise
    return extents
