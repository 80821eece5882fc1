"""Changes of observations written together: one transaction and one statement per group.

A report that changes a host's observations (a ``Delta`` of the version this replica checked)
is the heartbeat's one write. Written alone, each costs a transaction (on SQLite, three trips
to its thread; on PostgreSQL, three round trips and a commit): most of a changed report's
cost (``bench/hosts_heartbeat.py``). Here the changes that arrive within ``window_seconds``
of the first are written by one ``UPDATE ... FROM (VALUES ...) RETURNING`` in one
transaction, each still conditional on its own: an up host's current session, a live token,
and the observations stored still being the ones it changed. Each report is answered once
its group is committed, with whether its change was written (a change that matched nothing,
because another replica wrote or revoked meanwhile, takes the checked way), so a reply
never names a version that is not stored. A report waits at most the window (its reply,
not the agent's commands, which have their own channel); a group is written at once when it
reaches ``MAX_GROUP``, and what is waiting is written when the store closes.

The statement needs SQLite 3.35 (``UPDATE ... FROM`` and ``RETURNING``); on an older one each
change is its own statement, still in the group's one transaction.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from typing import NamedTuple

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from blacksmith_mini.store import beats

Waiting = asyncio.Future[set[str] | None]  # the written host's active VM ids, or None
WINDOW_SECONDS = 0.25  # at 20 reports a second, about 5 to a group
MAX_GROUP = 50
ONE_STATEMENT = sqlite3.sqlite_version_info >= (3, 35)


class Change(NamedTuple):
    """One host's change: its token's hash, session, stamp, old and new observations."""

    hashed: str
    fence: int
    now: float
    old: str
    new: str


@functools.lru_cache(maxsize=2 * MAX_GROUP)
def _statement(dialect: str, count: int) -> TextClause:
    """The group's statement for ``count`` changes (built once per size and dialect): each
    written host's token hash and active VMs (as "1,2,3"), as the heartbeat's check reads."""
    pg = dialect == "postgresql"
    cast = "CAST(v.o AS JSON)" if pg else "v.o"
    ids = "string_agg(CAST(vms.vm_id AS TEXT), ',')" if pg else "group_concat(vms.vm_id)"
    active = ", ".join(f"'{state}'" for state in beats.ACTIVE)  # our constants, not input
    held = f"(SELECT {ids} FROM vms WHERE host = hosts.name AND state IN ({active}))"  # noqa: S608
    rows = ", ".join(
        f"(CAST(:h{i} AS VARCHAR(128)), CAST(:f{i} AS INTEGER), CAST(:t{i} AS FLOAT), "
        f"CAST(:x{i} AS TEXT), CAST(:o{i} AS TEXT))"
        for i in range(count)
    )
    return text(
        f"WITH v(hashed, fence, now, old, o) AS (VALUES {rows}) "  # noqa: S608 (no input)
        f"UPDATE hosts SET last_seen = v.now, observations = {cast}, "
        "observations_version = observations_version + 1 FROM v "
        "WHERE hosts.token_hash = v.hashed AND hosts.revoked_at IS NULL "
        "AND hosts.session = v.fence AND hosts.down_since IS NULL "
        f"AND CAST(hosts.observations AS TEXT) = v.old RETURNING hosts.token_hash, {held}"
    )


def _values(changes: list[Change]) -> dict[str, object]:
    values: dict[str, object] = {}
    for i, change in enumerate(changes):
        values |= {f"h{i}": change.hashed, f"f{i}": change.fence, f"t{i}": change.now}
        values |= {f"x{i}": change.old, f"o{i}": change.new}
    return values


class BeatGroup:
    """The changes waiting to be written together, and the one task that writes them."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        window_seconds: float = WINDOW_SECONDS,
        one_statement: bool = ONE_STATEMENT,
    ) -> None:
        self.engine = engine
        self.window_seconds = window_seconds
        self.one_statement = one_statement or engine.dialect.name == "postgresql"
        self._waiting: dict[str, tuple[Change, Waiting]] = {}  # by token hash
        self._timer: asyncio.TimerHandle | None = None
        self._writes: set[asyncio.Task[None]] = set()

    async def write(self, change: Change) -> set[str] | None:
        """Write ``change`` with its group: the host's active VMs' ids (as observations key
        them) when it was written, None
        when it matched nothing. None at once, writing nothing, when the same host's change is
        already waiting (the caller checks it)."""
        if change.hashed in self._waiting:
            return None
        future: Waiting = asyncio.get_running_loop().create_future()
        self._waiting[change.hashed] = (change, future)
        if len(self._waiting) >= MAX_GROUP:
            self._start()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window_seconds, self._start)
        return await asyncio.shield(future)  # a caller gone does not take its group's write

    async def close(self) -> None:
        """Write what is waiting, and wait for the writes under way."""
        if self._waiting:
            self._start()
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._waiting = self._waiting, {}
        task = asyncio.get_running_loop().create_task(self._write(group), name="beat-group")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, group: dict[str, tuple[Change, Waiting]]) -> None:
        changes = [change for change, _ in group.values()]
        try:
            written = await self._written(changes)
        except Exception as exc:  # each waiting report gets the error; none is written
            for _, future in group.values():
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (the app stopping): so are the reports waiting
            for _, future in group.values():
                future.cancel()
            raise
        for hashed, (_, future) in group.items():
            if not future.done():
                future.set_result(written.get(hashed))

    async def _written(self, changes: list[Change]) -> dict[str, set[str]]:
        """Of ``changes``, the written ones' hosts' active VMs (by token hash), in one
        transaction."""
        async with self.engine.begin() as connection:
            if self.one_statement:
                statement = _statement(self.engine.dialect.name, len(changes))
                found = await connection.execute(statement, _values(changes))
                return {hashed: _ids(held) for hashed, held in found}
            written = {}
            for change in changes:  # an old SQLite: a statement each
                values = {"hashed": change.hashed, "fence": change.fence, "now": change.now}
                values |= {"old": change.old, "o": change.new}
                for (held,) in await connection.execute(beats.write_changed(), values):
                    written[change.hashed] = _ids(held)
            return written


def _ids(held: str | None) -> set[str]:
    """The VM ids of a comma-separated list, as strings (as observations key them)."""
    found = set((held or "").split(","))
    found.discard("")
    return found
