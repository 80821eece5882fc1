"""The cache's SQLite index (stdlib ``sqlite3``, WAL): entries, their state, parts and use.

One table of entries keyed by (repository, scope, key, version) — unique over pending and
committed rows alike, which is what makes a second reservation of a key lose — and one table of
the parts an upload has received. A committed entry's parts are frozen into its ``layout``
(JSON, in byte order) and the part rows are dropped.

We chose the standard library over SQLAlchemy: a handful of short statements on one local file,
no migrations to share with the control plane's database, and nothing async to bridge; each
call takes a lock and finishes in well under a millisecond.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
    owner TEXT NOT NULL,
    size INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    layout TEXT,
    reserved_at REAL NOT NULL,
    touched_at REAL NOT NULL,
    committed_at REAL,
    last_used_at REAL NOT NULL,
    UNIQUE (repository, scope, key, version)
);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (state, last_used_at);
CREATE TABLE IF NOT EXISTS parts (
    entry_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    block_id TEXT,
    start INTEGER,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (entry_id, name)
);
"""


@dataclass(frozen=True)
class Part:
    """One file of an entry: its name in the entry's directory, size and SHA-256 (hex)."""

    name: str
    size: int
    sha256: str
    block_id: str | None = None
    start: int | None = None


@dataclass(frozen=True)
class Row:
    """An entry row, pending or committed."""

    id: int
    repository: str
    scope: str
    key: str
    version: str
    state: str
    owner: str
    size: int
    sha256: str | None
    layout: tuple[Part, ...] | None
    reserved_at: float
    touched_at: float
    committed_at: float | None
    last_used_at: float

    @property
    def created_at(self) -> float:
        return self.committed_at if self.committed_at is not None else self.reserved_at


def _layout(text: str | None) -> tuple[Part, ...] | None:
    if text is None:
        return None
    return tuple(Part(name=n, size=s, sha256=h) for n, s, h in json.loads(text))


def dump_layout(parts: Sequence[Part]) -> str:
    return json.dumps([[p.name, p.size, p.sha256] for p in parts], separators=(",", ":"))


_COLUMNS = (
    "id, repository, scope, key, version, state, owner, size, sha256, layout, "
    "reserved_at, touched_at, committed_at, last_used_at"
)


def _row(values: tuple[object, ...]) -> Row:
    (ident, repository, scope, key, version, state, owner, size, sha, layout, reserved, touched,
     committed, used) = values  # fmt: skip
    return Row(
        id=int(str(ident)),
        repository=str(repository),
        scope=str(scope),
        key=str(key),
        version=str(version),
        state=str(state),
        owner=str(owner),
        size=int(str(size)),
        sha256=None if sha is None else str(sha),
        layout=_layout(None if layout is None else str(layout)),
        reserved_at=float(str(reserved)),
        touched_at=float(str(touched)),
        committed_at=None if committed is None else float(str(committed)),
        last_used_at=float(str(used)),
    )


class Index:
    """The SQLite file under the cache directory; every method is short and thread-safe."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _select(self, where: str, params: Sequence[object]) -> list[Row]:
        with self._lock:
            query = f"SELECT {_COLUMNS} FROM entries WHERE {where}"  # noqa: S608 (ours, not input)
            cursor = self._db.execute(query, params)
            return [_row(values) for values in cursor.fetchall()]

    def reserve(
        self,
        *,
        repository: str,
        scope: str,
        key: str,
        version: str,
        owner: str,
        now: float,
        stale_before: float,
    ) -> tuple[int | None, int | None]:
        """(the new pending row's id or None if the key is taken, the stale row it replaced).

        The key is taken by a committed entry, or by a pending one touched since
        ``stale_before``; an older pending row (an upload abandoned midway) is replaced.
        """
        with self._tx() as db:
            found = db.execute(
                "SELECT id, state, touched_at FROM entries"
                " WHERE repository = ? AND scope = ? AND key = ? AND version = ?",
                (repository, scope, key, version),
            ).fetchone()
            replaced = None
            if found is not None:
                ident, state, touched = found
                if state == "committed" or float(touched) >= stale_before:
                    return None, None
                db.execute("DELETE FROM entries WHERE id = ?", (ident,))
                db.execute("DELETE FROM parts WHERE entry_id = ?", (ident,))
                replaced = int(ident)
            cursor = db.execute(
                "INSERT INTO entries (repository, scope, key, version, state, owner, reserved_at,"
                " touched_at, last_used_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                (repository, scope, key, version, owner, now, now, now),
            )
            return int(cursor.lastrowid or 0), replaced

    def get(self, ident: int) -> Row | None:
        found = self._select("id = ?", (ident,))
        return found[0] if found else None

    def find(self, *, repository: str, scope: str, key: str, version: str) -> Row | None:
        found = self._select(
            "repository = ? AND scope = ? AND key = ? AND version = ?",
            (repository, scope, key, version),
        )
        return found[0] if found else None

    def delete(self, ident: int) -> bool:
        with self._tx() as db:
            db.execute("DELETE FROM parts WHERE entry_id = ?", (ident,))
            return db.execute("DELETE FROM entries WHERE id = ?", (ident,)).rowcount > 0

    def touch(self, ident: int, now: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE entries SET touched_at = ? WHERE id = ?", (now, ident))

    def used(self, ident: int, now: float) -> None:
        with self._tx() as db:
            db.execute("UPDATE entries SET last_used_at = ? WHERE id = ?", (now, ident))

    def put_part(self, ident: int, part: Part) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO parts (entry_id, name, block_id, start, size, sha256)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (ident, part.name, part.block_id, part.start, part.size, part.sha256),
            )

    def parts(self, ident: int) -> list[Part]:
        with self._lock:
            cursor = self._db.execute(
                "SELECT name, size, sha256, block_id, start FROM parts WHERE entry_id = ?",
                (ident,),
            )
            return [
                Part(name=n, size=int(s), sha256=h, block_id=b, start=None if o is None else int(o))
                for n, s, h, b, o in cursor.fetchall()
            ]

    def seal(self, ident: int, layout: Sequence[Part]) -> None:
        with self._tx() as db:
            db.execute("UPDATE entries SET layout = ? WHERE id = ?", (dump_layout(layout), ident))

    def commit(self, ident: int, *, size: int, sha256: str, now: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE entries SET state = 'committed', size = ?, sha256 = ?, committed_at = ?,"
                " last_used_at = ? WHERE id = ? AND state = 'pending'",
                (size, sha256, now, now, ident),
            )
            db.execute("DELETE FROM parts WHERE entry_id = ?", (ident,))

    def candidates(
        self, *, repository: str, reads: Sequence[str], version: str, probes: Sequence[str]
    ) -> list[Row]:
        if not reads or not probes:
            return []
        scopes = ", ".join("?" for _ in reads)
        prefixes = " OR ".join("substr(key, 1, ?) = ?" for _ in probes)
        params: list[object] = [repository, version, *reads]
        for probe in probes:
            params += [len(probe), probe]
        return self._select(
            f"state = 'committed' AND repository = ? AND version = ? AND scope IN ({scopes})"
            f" AND ({prefixes})",
            params,
        )

    def committed(
        self, *, repository: str | None = None, key: str | None = None, scope: str | None = None
    ) -> list[Row]:
        where, params = ["state = 'committed'"], []
        for column, value in (("repository", repository), ("key", key), ("scope", scope)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        return self._select(" AND ".join(where) + " ORDER BY last_used_at DESC, id DESC", params)

    def pending(self) -> list[Row]:
        return self._select("state = 'pending' ORDER BY id", ())

    def by_use(self, repository: str | None = None) -> list[Row]:
        """Committed entries, least recently used first (the eviction order)."""
        if repository is None:
            return self._select("state = 'committed' ORDER BY last_used_at, id", ())
        return self._select(
            "state = 'committed' AND repository = ? ORDER BY last_used_at, id", (repository,)
        )

    def total(self, repository: str | None = None) -> int:
        with self._lock:
            if repository is None:
                found = self._db.execute(
                    "SELECT COALESCE(SUM(size), 0) FROM entries WHERE state = 'committed'"
                ).fetchone()
            else:
                found = self._db.execute(
                    "SELECT COALESCE(SUM(size), 0) FROM entries"
                    " WHERE state = 'committed' AND repository = ?",
                    (repository,),
                ).fetchone()
            return int(found[0])
