"""Streaming bytes between HTTP bodies and part files, hashing as they pass (SHA-256).

Nothing holds a whole entry, or even a whole part, in memory: a body's chunks are batched by
the MiB and a writer task hands each batch to a worker thread (``diskio.Sink``: hash, then
``O_DIRECT`` writes through a 1 MiB aligned buffer; both release the GIL), with at most two
batches queued, so a request costs about 4 MiB however large it is. A part is written to
``<name>.<random>.tmp``, fsynced, and only renamed to ``<name>`` once every declared byte
arrived; an interrupted body leaves nothing behind.

Reads go the other way in 4 MiB blocks read (``diskio.read_block``) in a worker thread, the
next one under way while the current one is sent (a few blocks per response at most). A read
that covers a whole part verifies the part's SHA-256 as it goes and raises ``CorruptPart`` at
the end on a mismatch (the HTTP layer then breaks the response off, so the client sees a short
body and never a complete corrupt one).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from blacksmith_mini.cache.diskio import Sink, read_block
from blacksmith_mini.cache.index import Part

BLOCK = 1 << 20
MAX_BATCH = 256  # chunks per writev, well under IOV_MAX (1024)
READ_BLOCK = 4 << 20
QUEUED_BLOCKS = 2
BLOB_PART = "blob"  # the one part of an entry uploaded with Put Blob


def block_part_name(block_id: str) -> str:
    """The part file of an Azure block (ids are base64 of up to 64 bytes, not file names)."""
    return "b-" + hashlib.sha256(block_id.encode()).hexdigest()[:40]


def chunk_part_name(start: int) -> str:
    """The part file of a v1 chunk starting at byte ``start``."""
    return f"c-{start:016d}"


def entry_digest(layout: Sequence[Part]) -> str:
    """An entry's SHA-256: its one part's, or the SHA-256 of its parts' digests in order."""
    if len(layout) == 1:
        return layout[0].sha256
    return hashlib.sha256("\n".join(p.sha256 for p in layout).encode()).hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class TooLarge(Exception):
    """The body is larger than the caller allowed."""


class Incomplete(Exception):
    """The body ended before the number of bytes it declared."""


class CorruptPart(Exception):
    """A part's bytes no longer match the size or SHA-256 recorded when it was written."""

    def __init__(self, name: str) -> None:
        super().__init__(f"part {name} does not match its recorded SHA-256")
        self.name = name


async def _drain(receive: anyio.abc.ObjectReceiveStream[list[bytes]], sink: Sink) -> None:
    async with receive:
        async for block in receive:
            if sink.error is None:
                try:
                    await anyio.to_thread.run_sync(sink.write, block)
                except OSError as error:
                    sink.error = error


async def receive(
    chunks: AsyncIterator[bytes],
    path: Path,
    *,
    limit: int,
    expected: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Part:
    """Streams ``chunks`` into the part file ``path``; its size and SHA-256 on success."""
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")  # a retry never shares it
    sink = Sink(temporary)
    size = 0
    failure: Exception | None = None
    try:
        send, receive_stream = anyio.create_memory_object_stream[list[bytes]](QUEUED_BLOCKS)
        async with anyio.create_task_group() as group:
            group.start_soon(_drain, receive_stream, sink)
            async with send:
                try:
                    batch: list[bytes] = []
                    batched = 0
                    async for chunk in chunks:
                        size += len(chunk)
                        if size > limit or (expected is not None and size > expected):
                            raise TooLarge(f"body exceeds {min(limit, expected or limit)} bytes")
                        batch.append(chunk)
                        batched += len(chunk)
                        if batched >= BLOCK or len(batch) >= MAX_BATCH:
                            await send.send(batch)
                            batch, batched = [], 0
                            if progress is not None:
                                progress(size)
                            if sink.error is not None:
                                break
                    if batch:
                        await send.send(batch)
                except Exception as error:
                    failure = error
        if failure is not None:
            raise failure
        if sink.error is not None:
            raise sink.error
        if expected is not None and size != expected:
            raise Incomplete(f"body ended after {size} of {expected} bytes")
        await anyio.to_thread.run_sync(sink.finish)
    except BaseException:
        sink.close()
        temporary.unlink(missing_ok=True)
        raise
    sink.close()
    os.replace(temporary, path)
    if progress is not None:
        progress(size)
    return Part(name=path.name, size=size, sha256=sink.digest.hexdigest())


def _read_ahead(
    loop: asyncio.AbstractEventLoop, fd: int, position: int, high: int, digest: hashlib._Hash | None
) -> asyncio.Future[memoryview]:
    """Starts reading the block at ``position`` (up to ``high``) in the loop's thread pool."""
    length = min(READ_BLOCK, high - position + 1)
    return loop.run_in_executor(None, read_block, fd, position, length, digest)


async def read(
    directory: Path, layout: Sequence[Part], *, start: int, end: int, verify: bool = True
) -> AsyncIterator[memoryview]:
    """Yields bytes ``start..end`` (inclusive) of the entry made of ``layout`` in ``directory``.

    The next block is read (and hashed) in a worker thread while the current one is being
    sent. Parts read whole are checked against their SHA-256 when ``verify`` is set.
    """
    loop = asyncio.get_running_loop()
    offset = 0
    for part in layout:
        part_start, part_end = offset, offset + part.size - 1
        offset += part.size
        if part_end < start or part_start > end or part.size == 0:
            continue
        fd = os.open(directory / part.name, os.O_RDONLY)
        ahead: asyncio.Future[memoryview] | None = None
        try:
            if os.fstat(fd).st_size != part.size:
                raise CorruptPart(part.name)
            low = max(start, part_start) - part_start
            high = min(end, part_end) - part_start  # inclusive, within the part
            whole = verify and low == 0 and high == part.size - 1
            digest = hashlib.sha256() if whole else None
            if whole:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            position = low
            ahead = _read_ahead(loop, fd, position, high, digest)
            while ahead is not None:
                block = await ahead
                ahead = None
                if not block:
                    raise CorruptPart(part.name)
                position += len(block)
                if position <= high:
                    ahead = _read_ahead(loop, fd, position, high, digest)
                yield block
            if digest is not None and digest.hexdigest() != part.sha256:
                raise CorruptPart(part.name)
        finally:
            if ahead is not None:  # never close the file under a read still running
                with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                    await ahead
            os.close(fd)


def verify_part(path: Path, part: Part) -> bool:
    """Whether the file at ``path`` still has the size and SHA-256 recorded for ``part``."""
    try:
        if path.stat().st_size != part.size:
            return False
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(BLOCK):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == part.sha256
