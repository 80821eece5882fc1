"""Heartbeats in the store: the hot path of the multi-host mode (``bench/hosts_heartbeat.py``).

``heartbeat`` is one ``UPDATE ... RETURNING`` when nothing changed (token, session and host
state checked, ``last_seen`` stamped, the stored observations and the host's active VMs read),
and none when this replica checked the host within the refresh (``beatcache``). A report of
what changed (``observed.Delta``) of the version this replica checked is one conditional
write, made with the other changes of its moment (``beatgroup``: it matches nothing if the
stored observations changed elsewhere meanwhile, and the report takes the checked way), which
checks the host as the checked way would; any other change is checked first, applied only to
the version it names, and written. Observations are stored in one encoding
(``observed.encode``), so an unchanged report is a byte comparison.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from blacksmith_mini.store import beatcache, beatgroup, beats, observed


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Beat(NamedTuple):
    """A heartbeat stored: whether it changed what the loop acts on; the VMs to kill."""

    host: str
    changed: bool
    written_off: list[int]
    observed: str  # the digest of the host's observations as stored now (``observed``)
    resend: bool = False  # a ``Delta`` of another version: not applied; send them whole


class HeartbeatStore:
    """Mixin for ``Store`` (through ``HostStore``): agents' heartbeats."""

    engine: AsyncEngine
    # host -> its observations' text, decoded (shared by fenced views: the loop's view reads
    # a change without decoding what the report's way decoded already)
    _decoded: dict[str, tuple[str, dict[str, Any]]]
    _fragments: dict[str, observed.Fragments]  # host -> its VMs' encodings, to reuse
    _beats: beatcache.BeatCache  # heartbeats answered from memory (shared by fenced views)
    _group: beatgroup.BeatGroup  # changes written together (shared by fenced views)

    def _decode(self, name: str, text: str) -> tuple[str, dict[str, Any]]:
        """Host ``name``'s observations ``text``, decoded once per change of it."""
        kept = self._decoded.get(name)
        return kept if kept and kept[0] == text else (text, json.loads(text))

    async def heartbeat(
        self,
        token: str,
        *,
        session: int,
        observations: bytes | None,
        acks: Sequence[tuple[int, Mapping[str, Any]]],
        now: float,
        delta: observed.Delta | None = None,
    ) -> Beat | None:
        """A report of an up host's current session: its observations whole (``observations``,
        encoded), or what changed since a stored version (``delta``), or neither (as in the
        last report); one statement when nothing changed. None, doing nothing, when the
        token is not a live host's, the session not current or the host down. A ``delta`` of
        a version that is not the one stored is not applied (``Beat.resend``). An ack wipes
        its command's credentials; one of an unknown or another host's command is ignored."""
        hashed = token_hash(token)
        if not acks and (delta is None or not delta.says_something):
            base = delta.base if delta is not None else None
            known = self._beats.answer(
                hashed, session=session, observations=observations, base=base
            )
            if known is not None:  # checked within beatcache.REFRESH_SECONDS: no statement
                self._beats.stamp(known.name, now)
                return Beat(known.name, False, known.written_off, known.digest)
        elif not acks and delta is not None:
            beat = await self._change_known(hashed, session=session, delta=delta, now=now)
            if beat is not None:
                return beat
        statement = beats.stamp(self.engine.dialect.name)
        values = {"hashed": hashed, "fence": session, "now": now}
        async with self.engine.begin() as connection:  # Core: no ORM session per heartbeat
            found = (await connection.execute(statement, values)).first()
            if found is None:
                return None
            name, stored, active = found
            current = self._decode(name, stored)[1]
            encoded, decoded, changed = stored.encode(), current, False
            version = observed.digest(encoded)
            resend = delta is not None and delta.base != version
            if observations is not None and observations != encoded:
                encoded, decoded = observations, json.loads(observations)
                changed = observed.material_change(current, decoded)
            elif delta is not None and not resend and delta.says_something:
                decoded = observed.apply(current, delta)
                encoded = observed.encode(decoded, reusing=self._fragments.setdefault(name, {}))
                changed = observed.delta_is_material(current, delta)
            if decoded is not current:
                await beats.write_observations(connection, name, encoded)
                version = observed.digest(encoded)
            if acks:
                await beats.acknowledge(connection, name, acks, now=now)
                changed = True
        self._decoded[name] = (stored if decoded is current else encoded.decode(), decoded)
        kept = {int(vm_id) for vm_id in (active or "").split(",") if vm_id}
        written_off = sorted(set(map(int, decoded)) - kept)
        clock = self._beats.clock()
        self._beats.remember(
            hashed, beatcache.Known(name, session, encoded, version, written_off, clock)
        )
        return Beat(
            host=name, changed=changed, written_off=written_off, observed=version, resend=resend
        )

    async def _change_known(
        self, hashed: str, *, session: int, delta: observed.Delta, now: float
    ) -> Beat | None:
        """A change of the version this replica checked, in one conditional write with the
        other changes of its moment (``beatgroup``); None (nothing done) when it is not one,
        or the write matched nothing. The write checks what the heartbeat's check does (a live
        token, the current session, the host up) and reads the host's active VMs, so it is the
        host's check too: a host whose observations keep changing is checked at every report."""
        known = self._beats.answer(
            hashed, session=session, observations=None, base=delta.base, fresh=False
        )
        kept = self._decoded.get(known.name) if known is not None else None
        if known is None or kept is None or kept[0].encode() != known.stored:
            return None
        decoded = observed.apply(kept[1], delta)
        encoded = observed.encode(decoded, reusing=self._fragments.setdefault(known.name, {}))
        text = encoded.decode()
        change = beatgroup.Change(hashed, session, now, old=kept[0], new=text)
        active = await self._group.write(change)
        if active is None:
            self._beats.forget(known.name)  # changed elsewhere (or waiting already): check it
            return None
        self._decoded[known.name] = (text, decoded)
        written_off = sorted(map(int, decoded.keys() - active))
        version = observed.digest(encoded)
        checked = beatcache.Known(
            known.name, session, encoded, version, written_off, self._beats.clock()
        )
        self._beats.remember(hashed, checked)
        changed = observed.delta_is_material(kept[1], delta)
        return Beat(known.name, changed, written_off, version)

    def heartbeat_refresh(self, seconds: float) -> None:
        """Check each host against the database at least every ``seconds`` (``beatcache``)."""
        self._beats.refresh_seconds = seconds

    async def flush_heartbeats(self) -> int:
        """Write the ``last_seen`` stamps of heartbeats answered from memory, in one statement
        (a revoked host's is dropped); how many hosts were stamped."""
        stamps = self._beats.take_stamps()
        if stamps:
            async with self.engine.begin() as connection:
                await connection.execute(
                    beats.stamp_many(), [{"n": name, "t": at} for name, at in stamps.items()]
                )
        return len(stamps)
