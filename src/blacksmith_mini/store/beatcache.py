"""What a replica remembers of its agents' heartbeats, so an unchanged one costs no statement.

A bare heartbeat (no acks, observations absent, the same as stored, or an empty change of the
stored version) of a token and session
this replica checked against the database within ``refresh_seconds`` is answered from memory:
its ``last_seen`` stamp waits here and ``flush`` writes every host's in one statement (the
runtime flushes every ``FLUSH_SECONDS``; a 15 s lease does not notice a second's delay).
Anything else, and each host at least every ``refresh_seconds``, takes the database path,
which re-checks the token, the session and that the host is up, and refreshes what is
remembered. So a revoked token, a replaced session or a VM written off is felt within
``refresh_seconds`` on any replica, and at once on the replica that made the change (it
forgets the host). The runtime makes ``refresh_seconds`` 0.8 x the host lease (12 s by
default: a host reporting every 5 s is checked every third report), so a host that was
found down (no heartbeat for a whole lease) is always checked when it comes back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

REFRESH_SECONDS = 12.0
FLUSH_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Known:
    """A host as its last checked heartbeat left it."""

    name: str
    session: int
    stored: bytes  # its observations as stored
    digest: str  # their version (``observed.digest``)
    written_off: list[int]
    checked_at: float  # monotonic


class BeatCache:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._known: dict[str, Known] = {}  # by token hash
        self._stamps: dict[str, float] = {}  # host name -> last_seen not yet written

    def answer(
        self,
        hashed: str,
        *,
        session: int,
        observations: bytes | None,
        base: str | None = None,
        fresh: bool = True,
    ) -> Known | None:
        """The host of a heartbeat that may be answered from memory, or None: ``observations``
        (whole, encoded) the same as stored, or an empty delta of the stored version ``base``;
        checked within ``refresh_seconds`` unless not ``fresh`` (a write that checks anyway)."""
        known = self._known.get(hashed)
        if known is None or known.session != session:
            return None
        if fresh and self.clock() - known.checked_at > self.refresh_seconds:
            return None
        if observations is not None and observations != known.stored:
            return None
        if base is not None and base != known.digest:
            return None
        return known

    def remember(self, hashed: str, known: Known) -> None:
        self._known[hashed] = known
        self._stamps.pop(known.name, None)  # the database path stamped it

    def forget(self, name: str) -> None:
        """Host ``name`` changed here (hello, revoked, down, up again): check it next time."""
        for hashed in [h for h, known in self._known.items() if known.name == name]:
            del self._known[hashed]
        self._stamps.pop(name, None)

    def stamp(self, name: str, now: float) -> None:
        self._stamps[name] = now

    def take_stamps(self) -> dict[str, float]:
        stamps, self._stamps = self._stamps, {}
        return stamps
