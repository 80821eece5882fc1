"""The on-disk store: atomic commit, nothing served before it, caps with LRU, integrity, restart."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blacksmith_mini.cache import parts
from blacksmith_mini.cache.parts import BLOB_PART, block_part_name, chunk_part_name
from blacksmith_mini.cache.store import (
    CacheStore,
    Conflict,
    IncompleteUpload,
    Limits,
    NotPending,
    OverCap,
)

pytestmark = pytest.mark.anyio
MAIN = "refs/heads/main"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1.0  # every reading moves on: commits and uses are strictly ordered
        return self.now


async def chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def broken(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise ConnectionResetError("client went away")


def open_store(root: Path, **limits: float) -> CacheStore:
    return CacheStore(root, Limits(**limits), clock=Clock())  # type: ignore[arg-type]


async def save(store: CacheStore, key: str, data: bytes, *, repository: str = "acme/a") -> int:
    ident = store.reserve(repository=repository, scope=MAIN, key=key, version="v", owner="vm")
    await store.receive_part(ident, chunks(data), name=BLOB_PART, expected=len(data))
    store.seal_blob(ident)
    return store.commit(ident, size=len(data)).entry.id


async def read_all(store: CacheStore, ident: int) -> bytes:
    row = store.entry(ident)
    assert row is not None
    return b"".join([b async for b in store.stream(row, start=0, end=row.size - 1)])


def lookup(store: CacheStore, key: str, *restore: str, repository: str = "acme/a") -> int | None:
    found = store.lookup(
        repository=repository, reads=(MAIN,), key=key, restore_keys=restore, version="v"
    )
    return None if found is None else found.id


async def test_a_committed_entry_reads_back_identical_with_its_sha256(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 17)
    ident = await save(store, "k", data)
    assert await read_all(store, ident) == data
    row = store.entry(ident)
    assert row is not None and row.sha256 == hashlib.sha256(data).hexdigest()
    assert lookup(store, "k") == ident


async def test_nothing_is_served_before_commit(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ident = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm")
    await store.receive_part(ident, chunks(b"x" * 1000), name=BLOB_PART, expected=1000)
    store.seal_blob(ident)
    assert lookup(store, "k") is None and store.entry(ident) is None
    assert not (store.entry_dir(ident)).exists()
    store.commit(ident, size=1000)
    assert lookup(store, "k") == ident


async def test_an_interrupted_or_short_body_leaves_no_part(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ident = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm")
    with pytest.raises(ConnectionResetError):
        await store.receive_part(ident, broken(b"x" * 5000), name=BLOB_PART, expected=10_000)
    with pytest.raises(parts.Incomplete):
        await store.receive_part(ident, chunks(b"x" * 5000), name=BLOB_PART, expected=10_000)
    assert list(store.upload_dir(ident).iterdir()) == [] and store.received(ident) == 0
    with pytest.raises(IncompleteUpload):
        store.seal_blob(ident)
    with pytest.raises(IncompleteUpload):
        store.commit(ident, size=5000)


async def test_a_key_is_taken_once_committed_and_while_being_uploaded(tmp_path: Path) -> None:
    store = open_store(tmp_path, reservation_ttl_seconds=100)
    first = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm1")
    with pytest.raises(Conflict):
        store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm2")
    other_scope = store.reserve(
        repository="acme/a", scope="refs/heads/x", key="k", version="v", owner="vm2"
    )
    assert other_scope != first
    await save(store, "done", b"abc")
    with pytest.raises(Conflict):
        store.reserve(repository="acme/a", scope=MAIN, key="done", version="v", owner="vm3")


async def test_an_abandoned_reservation_is_taken_over_after_its_ttl(tmp_path: Path) -> None:
    clock = Clock()
    store = CacheStore(tmp_path, Limits(reservation_ttl_seconds=50), clock=clock)
    first = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm1")
    await store.receive_part(first, chunks(b"half"), name=BLOB_PART, expected=4)
    clock.now += 100
    second = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm2")
    assert second != first and not store.upload_dir(first).exists()
    with pytest.raises(NotPending):
        await store.receive_part(first, chunks(b"late"), name=BLOB_PART, expected=4)


async def test_blocks_are_joined_in_block_list_order(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ident = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm")
    blocks = {"QUFB": b"A" * 300_000, "QkJC": b"B" * 200_000, "Q0ND": b"C" * 7}
    for block_id in ("Q0ND", "QUFB", "QkJC"):  # staged out of order, as parallel uploads do
        data = blocks[block_id]
        await store.receive_part(
            ident,
            chunks(data),
            name=block_part_name(block_id),
            expected=len(data),
            block_id=block_id,
        )
    with pytest.raises(IncompleteUpload):
        store.seal_blocks(ident, ["QUFB", "missing"])
    store.seal_blocks(ident, ["QUFB", "QkJC", "Q0ND"])
    entry = store.commit(ident, size=500_007).entry
    assert await read_all(store, entry.id) == blocks["QUFB"] + blocks["QkJC"] + blocks["Q0ND"]
    digests = "\n".join(hashlib.sha256(blocks[b]).hexdigest() for b in ("QUFB", "QkJC", "Q0ND"))
    assert entry.sha256 == hashlib.sha256(digests.encode()).hexdigest()
    middle = [b async for b in store.stream(entry, start=299_990, end=300_009)]
    assert b"".join(middle) == b"A" * 10 + b"B" * 10


async def test_v1_chunks_must_cover_the_size_without_gaps(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ident = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm")
    for start, data in ((0, b"a" * 10), (20, b"c" * 5)):
        await store.receive_part(
            ident, chunks(data), name=chunk_part_name(start), expected=len(data), start=start
        )
    with pytest.raises(IncompleteUpload, match="gap"):
        store.seal_ranges(ident, 25)
    await store.receive_part(
        ident, chunks(b"b" * 10), name=chunk_part_name(10), expected=10, start=10
    )
    with pytest.raises(IncompleteUpload):
        store.seal_ranges(ident, 30)
    store.seal_ranges(ident, 25)
    entry = store.commit(ident, size=25).entry
    assert await read_all(store, entry.id) == b"a" * 10 + b"b" * 10 + b"c" * 5


async def test_the_repository_cap_evicts_the_least_recently_used(tmp_path: Path) -> None:
    store = open_store(tmp_path, repository_bytes=2500)
    first = await save(store, "first", b"1" * 1000)
    second = await save(store, "second", b"2" * 1000)
    assert lookup(store, "first") == first  # a restore makes "first" the most recent
    third = await save(store, "third", b"3" * 1000)
    assert store.entry(second) is None and not store.entry_dir(second).exists()
    assert store.entry(first) is not None and store.entry(third) is not None
    with pytest.raises(OverCap):
        store.reserve(
            repository="acme/a", scope=MAIN, key="huge", version="v", owner="vm", size_hint=2501
        )


async def test_the_host_cap_evicts_across_repositories(tmp_path: Path) -> None:
    store = open_store(tmp_path, host_bytes=2500)
    old = await save(store, "k", b"1" * 1000, repository="acme/a")
    await save(store, "k", b"2" * 1000, repository="acme/b")
    await save(store, "k", b"3" * 1000, repository="acme/c")
    assert store.entry(old) is None and sorted(store.usage()) == ["acme/b", "acme/c"]


async def test_a_corrupt_part_is_refused_on_serve_and_found_by_scrub(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ident = await save(store, "k", b"x" * 5000)
    other = await save(store, "j", b"y" * 5000)
    for victim in (ident, other):
        path = store.entry_dir(victim) / BLOB_PART
        path.write_bytes(b"z" + path.read_bytes()[1:])
    row = store.entry(ident)
    assert row is not None
    with pytest.raises(parts.CorruptPart):
        _ = [b async for b in store.stream(row, start=0, end=row.size - 1)]
    assert store.entry(ident) is None and lookup(store, "k") is None
    report = store.scrub()
    assert [r.id for r in report.corrupt] == [other] and store.entry(other) is None


async def test_entries_survive_a_restart_and_a_crash_mid_commit_serves_nothing(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path)
    kept = await save(store, "kept", b"k" * 100)
    ident = store.reserve(repository="acme/a", scope=MAIN, key="torn", version="v", owner="vm")
    await store.receive_part(ident, chunks(b"t" * 100), name=BLOB_PART, expected=100)
    store.seal_blob(ident)
    os.rename(store.upload_dir(ident), store.entry_dir(ident))  # renamed, never marked
    (store.upload_dir(ident)).mkdir()
    (store.upload_dir(ident) / "x.tmp").write_bytes(b"partial")
    store.close()
    reopened = open_store(tmp_path)
    assert await read_all(reopened, kept) == b"k" * 100
    assert lookup(reopened, "torn") is None and not reopened.entry_dir(ident).exists()
    assert list(reopened.upload_dir(ident).iterdir()) == []


async def test_a_body_of_many_tiny_chunks_is_written_whole(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    data = os.urandom(5000)
    ident = store.reserve(repository="acme/a", scope=MAIN, key="k", version="v", owner="vm")
    await store.receive_part(ident, chunks(data, size=1), name=BLOB_PART, expected=len(data))
    store.seal_blob(ident)
    entry = store.commit(ident, size=len(data)).entry
    assert await read_all(store, entry.id) == data
