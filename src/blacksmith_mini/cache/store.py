"""The on-disk cache store: uploads, atomic commit, caps with LRU eviction, integrity, recovery.

Layout under the cache directory::

    index.sqlite3            the index (``index.py``)
    uploads/<id>/<part>      parts of a pending upload (``<part>.tmp`` while being written)
    entries/<id>/<part>      a committed entry: the same directory, renamed

An upload reserves its (repository, scope, key, version), receives parts (the whole blob,
Azure blocks, or v1 ``Content-Range`` chunks), is *sealed* (the parts' order fixed and checked:
every block staged, the chunks contiguous from byte 0) and then *committed*: the directory is
renamed into ``entries/`` (atomic, fsynced) and only then marked committed in the index. Until
that last step nothing is ever served; a crash in between leaves a directory that re-opening
removes. A committed entry is immutable: its key stays taken until it is evicted or deleted.

The SHA-256 recorded at commit is the entry's when it has one part; with several (blocks or
chunks uploaded in parallel, out of order) it is the SHA-256 of the parts' digests in order, and
each part's own SHA-256 is checked whenever it is read whole and by ``scrub``: nothing reads an
entry a second time to commit it.

Caps: after each commit the least recently used entries of that repository are evicted until
it is under ``Limits.repository_bytes``, then those of the whole host until it is under
``Limits.host_bytes``; the entry just committed is never its own victim.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from blacksmith_mini.cache import parts, scope
from blacksmith_mini.cache.index import Index, Part, Row

GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    repository_bytes: int = 10 * GIB
    host_bytes: int = 100 * GIB
    reservation_ttl_seconds: float = 600.0


class Conflict(Exception):
    """The key is taken: committed already, or being uploaded by another job."""


class NotPending(Exception):
    """No pending upload with this id (never reserved, committed, or abandoned)."""


class IncompleteUpload(Exception):
    """Sealing or committing refused: a block missing, chunks with gaps, a size mismatch."""


class OverCap(Exception):
    """The entry alone is larger than the repository's cap."""


@dataclass(frozen=True)
class Committed:
    entry: Row
    evicted: tuple[Row, ...]


@dataclass(frozen=True)
class ScrubReport:
    checked: int
    corrupt: tuple[Row, ...]
    expired: tuple[int, ...]


class CacheStore:
    """One cache directory. Re-opening the same directory finds every committed entry."""

    def __init__(
        self, root: Path, limits: Limits | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = root
        self.limits = limits or Limits()
        self.clock = clock
        self.uploads_dir = root / "uploads"
        self.entries_dir = root / "entries"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        self.index = Index(root / "index.sqlite3")
        self._inflight: dict[int, dict[str, int]] = {}  # upload -> part -> bytes so far
        self._recover()

    def close(self) -> None:
        self.index.close()

    def upload_dir(self, ident: int) -> Path:
        return self.uploads_dir / str(ident)

    def entry_dir(self, ident: int) -> Path:
        return self.entries_dir / str(ident)

    def _recover(self) -> None:
        pending = {row.id for row in self.index.pending()}
        committed = {row.id: row for row in self.index.committed()}
        for child in self.uploads_dir.iterdir():
            if not child.name.isdigit() or int(child.name) not in pending:
                shutil.rmtree(child, ignore_errors=True)
                continue
            for leftover in child.glob("*.tmp"):
                leftover.unlink(missing_ok=True)
        for child in self.entries_dir.iterdir():
            if not child.name.isdigit() or int(child.name) not in committed:
                shutil.rmtree(child, ignore_errors=True)
        for ident in committed:
            if not self.entry_dir(ident).is_dir():
                self.index.delete(ident)
        for ident in pending:
            self.upload_dir(ident).mkdir(exist_ok=True)

    # -- uploads --------------------------------------------------------------------------

    def reserve(
        self,
        *,
        repository: str,
        scope: str,
        key: str,
        version: str,
        owner: str,
        size_hint: int | None = None,
    ) -> int:
        """A new pending upload's id; ``Conflict`` if the key is taken, ``OverCap`` if too big."""
        if size_hint is not None and size_hint > self.limits.repository_bytes:
            raise OverCap(f"{size_hint} bytes is over the {self.limits.repository_bytes} cap")
        now = self.clock()
        ident, replaced = self.index.reserve(
            repository=repository,
            scope=scope,
            key=key,
            version=version,
            owner=owner,
            now=now,
            stale_before=now - self.limits.reservation_ttl_seconds,
        )
        if replaced is not None:
            self._drop_upload_files(replaced)
        if ident is None:
            raise Conflict(f"{scope} {key} {version}")
        self.upload_dir(ident).mkdir(parents=True, exist_ok=True)
        return ident

    def pending_upload(self, ident: int) -> Row:
        row = self.index.get(ident)
        if row is None or row.state != "pending":
            raise NotPending(str(ident))
        return row

    def find_pending(self, *, repository: str, scope: str, key: str, version: str) -> Row | None:
        row = self.index.find(repository=repository, scope=scope, key=key, version=version)
        return row if row is not None and row.state == "pending" else None

    def received(self, ident: int) -> int:
        """Bytes an upload holds: its finished parts plus those still streaming in."""
        done = sum(part.size for part in self.index.parts(ident))
        return done + sum(self._inflight.get(ident, {}).values())

    async def receive_part(
        self,
        ident: int,
        chunks: AsyncIterator[bytes],
        *,
        name: str,
        expected: int | None,
        block_id: str | None = None,
        start: int | None = None,
    ) -> Part:
        """Streams one part of pending upload ``ident`` to disk; ``NotPending`` if it is gone."""
        self.pending_upload(ident)
        others = sum(p.size for p in self.index.parts(ident) if p.name != name)
        inflight = self._inflight.setdefault(ident, {})

        def progress(size: int) -> None:
            inflight[name] = size

        try:
            part = await parts.receive(
                chunks,
                self.upload_dir(ident) / name,
                limit=max(0, self.limits.repository_bytes - others),
                expected=expected,
                progress=progress,
            )
        except FileNotFoundError as error:
            raise NotPending(str(ident)) from error
        finally:
            inflight.pop(name, None)
            if not inflight:
                self._inflight.pop(ident, None)
        part = replace(part, block_id=block_id, start=start)
        try:
            self.pending_upload(ident)
        except NotPending:
            (self.upload_dir(ident) / name).unlink(missing_ok=True)
            raise
        self.index.put_part(ident, part)
        self.index.touch(ident, self.clock())
        return part

    def seal_blob(self, ident: int) -> None:
        """Put Blob: the one part ``blob`` is the whole entry."""
        found = {p.name: p for p in self.index.parts(ident)}
        if parts.BLOB_PART not in found:
            raise IncompleteUpload("no blob was uploaded")
        self.index.seal(ident, [found[parts.BLOB_PART]])

    def seal_blocks(self, ident: int, block_ids: Sequence[str]) -> None:
        """Put Block List: the staged blocks, in the order the list names them."""
        self.pending_upload(ident)
        staged = {p.block_id: p for p in self.index.parts(ident) if p.block_id is not None}
        missing = [b for b in block_ids if b not in staged]
        if missing or not block_ids:
            raise IncompleteUpload(f"{len(missing)} of {len(block_ids)} blocks not staged")
        self.index.seal(ident, [staged[b] for b in block_ids])

    def seal_ranges(self, ident: int, size: int) -> None:
        """v1 commit: the chunks must cover ``0..size-1`` exactly, without gaps or overlaps."""
        self.pending_upload(ident)
        chunks = sorted(
            (p for p in self.index.parts(ident) if p.start is not None),
            key=lambda p: p.start or 0,
        )
        position = 0
        for chunk in chunks:
            if chunk.start != position:
                raise IncompleteUpload(f"chunks leave a gap or overlap at byte {position}")
            position += chunk.size
        if position != size:
            raise IncompleteUpload(f"chunks hold {position} bytes, the commit says {size}")
        self.index.seal(ident, chunks)

    def commit(self, ident: int, *, size: int) -> Committed:
        """Makes a sealed upload a served entry (atomic rename), then evicts under the caps."""
        row = self.pending_upload(ident)
        layout = row.layout
        if layout is None:
            raise IncompleteUpload("the upload was never completed")
        total = sum(part.size for part in layout)
        if total != size:
            raise IncompleteUpload(f"the upload holds {total} bytes, not {size}")
        if size > self.limits.repository_bytes:
            self.abandon(ident)
            raise OverCap(f"{size} bytes is over the {self.limits.repository_bytes} cap")
        source = self.upload_dir(ident)
        keep = {part.name for part in layout}
        for child in source.iterdir():
            if child.name not in keep:
                child.unlink(missing_ok=True)
        parts.fsync_dir(source)
        os.rename(source, self.entry_dir(ident))
        parts.fsync_dir(self.entries_dir)
        self.index.commit(ident, size=size, sha256=parts.entry_digest(layout), now=self.clock())
        entry = self.index.get(ident)
        assert entry is not None
        return Committed(entry=entry, evicted=self._evict(row.repository, keep=ident))

    def abandon(self, ident: int) -> None:
        """Forgets a pending upload and its parts (the key becomes free again)."""
        row = self.index.get(ident)
        if row is not None and row.state == "pending":
            self.index.delete(ident)
        self._drop_upload_files(ident)

    def _drop_upload_files(self, ident: int) -> None:
        shutil.rmtree(self.upload_dir(ident), ignore_errors=True)

    # -- eviction, deletion, integrity ----------------------------------------------------

    def _evict(self, repository: str, *, keep: int) -> tuple[Row, ...]:
        evicted: list[Row] = []
        caps = ((repository, self.limits.repository_bytes), (None, self.limits.host_bytes))
        for owner, cap in caps:
            excess = self.index.total(owner) - cap
            for victim in self.index.by_use(owner):
                if excess <= 0:
                    break
                if victim.id == keep:
                    continue
                self.remove(victim.id)
                evicted.append(victim)
                excess -= victim.size
        return tuple(evicted)

    def remove(self, ident: int) -> Row | None:
        """Deletes a committed entry (a stream already reading it finishes on Linux)."""
        row = self.index.get(ident)
        if row is None or row.state != "committed":
            return None
        self.index.delete(ident)
        shutil.rmtree(self.entry_dir(ident), ignore_errors=True)
        return row

    def scrub(self) -> ScrubReport:
        """Checks every committed part's SHA-256 (removing the corrupt); expires stale uploads."""
        corrupt: list[Row] = []
        rows = self.index.committed()
        for row in rows:
            directory = self.entry_dir(row.id)
            layout = row.layout or ()
            if not all(parts.verify_part(directory / part.name, part) for part in layout):
                self.remove(row.id)
                corrupt.append(row)
        stale_before = self.clock() - self.limits.reservation_ttl_seconds
        expired = []
        for row in self.index.pending():
            if row.touched_at < stale_before and row.id not in self._inflight:
                self.abandon(row.id)
                expired.append(row.id)
        return ScrubReport(checked=len(rows), corrupt=tuple(corrupt), expired=tuple(expired))

    # -- reads ----------------------------------------------------------------------------

    def lookup(
        self,
        *,
        repository: str,
        reads: Sequence[str],
        key: str,
        restore_keys: Sequence[str],
        version: str,
    ) -> Row | None:
        """GitHub's match (``scope.pick``) among this repository's committed entries."""
        probes = [key, *restore_keys]
        rows = self.index.candidates(
            repository=repository, reads=reads, version=version, probes=probes
        )
        hit = scope.pick(rows, key=key, restore_keys=restore_keys, version=version, reads=reads)
        if hit is not None:
            self.index.used(hit.id, self.clock())
        return hit

    def entry(self, ident: int) -> Row | None:
        row = self.index.get(ident)
        return row if row is not None and row.state == "committed" else None

    async def stream(
        self, row: Row, *, start: int, end: int, verify: bool = True
    ) -> AsyncIterator[memoryview]:
        """Bytes ``start..end`` of a committed entry; a corrupt part removes the entry."""
        try:
            async for block in parts.read(
                self.entry_dir(row.id), row.layout or (), start=start, end=end, verify=verify
            ):
                yield block
        except (parts.CorruptPart, FileNotFoundError):
            self.remove(row.id)
            raise

    def entries(
        self, *, repository: str | None = None, key: str | None = None, scope: str | None = None
    ) -> list[Row]:
        return self.index.committed(repository=repository, key=key, scope=scope)

    def uploads(self) -> list[tuple[Row, int]]:
        return [(row, self.received(row.id)) for row in self.index.pending()]

    def usage(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for row in self.index.committed():
            totals[row.repository] = totals.get(row.repository, 0) + row.size
        return totals
