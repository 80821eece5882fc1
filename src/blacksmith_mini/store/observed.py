"""A host's stored observations: their one encoding, their digest, and the changes to them.

A host's observations are stored as one JSON object, ``{vm_id: observation}``, in one
encoding (``encode``: compact, as the agent protocol's ``wire.encode_observations`` dumps them),
so an unchanged report is a byte comparison. Their ``digest`` names a stored version: an agent
that sends only what changed (``Delta``) names the version it changed (its ``base``), and the
change is applied only when that is what is stored, on whichever replica the report lands;
otherwise nothing is applied and the agent is asked to send them whole.

``material_change`` says whether a change moves what the planner reads (a VM came or went, or
one of its ``MATERIAL`` facts moved): clocks and details are stored but do not wake the loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import pydantic_core

# What the planner reads of an observation, with its default (a stored observation may lack it).
MATERIAL: dict[str, object] = dict.fromkeys(("alive", "exit_code", "kept_until"))
MATERIAL |= dict.fromkeys(("runner_online", "job_started", "job_finished"), False)
Observations = Mapping[str, Mapping[str, Any]]
# A host's VMs' encodings (``"<vm_id>":{...}``) by VM id, each with the observation it encodes.
Fragments = dict[str, tuple[Mapping[str, Any], bytes]]


class Delta(NamedTuple):
    """What changed in a host's observations since version ``base`` (a ``digest``): the VMs
    whose observation changed or that are new (``changed``, by VM id), the VMs gone."""

    base: str
    changed: Mapping[str, Mapping[str, Any]]
    gone: Sequence[str]

    @property
    def says_something(self) -> bool:
        """Whether it changes anything (an empty one is a bare heartbeat of ``base``)."""
        return bool(self.changed or self.gone)


def encode(observations: Observations, *, reusing: Fragments | None = None) -> bytes:
    """The one encoding observations are stored in: compact JSON, as ``wire`` dumps them.

    ``reusing``: the encodings of a host's VMs from its last encoding, by VM id, each with
    the observation it encodes. A VM whose observation is that very object is not encoded
    again (a change touches a few VMs of a hundred: each report encoded them all before);
    ``reusing`` is updated in place to these observations'. The bytes are the same."""
    if reusing is None:
        return pydantic_core.to_json(observations)
    fresh: Fragments = {}
    for vm_id, seen in observations.items():
        kept = reusing.get(vm_id)
        if kept is None or kept[0] is not seen:  # ``"<vm_id>":{...}``, encoded as whole
            kept = (seen, pydantic_core.to_json({vm_id: seen})[1:-1])
        fresh[vm_id] = kept
    reusing.clear()
    reusing.update(fresh)
    return b"{" + b",".join(kept[1] for kept in fresh.values()) + b"}"


def digest(encoded: bytes) -> str:
    """The name of one stored version of a host's observations (its encoding's BLAKE2b)."""
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def apply(stored: Observations, delta: Delta) -> dict[str, Mapping[str, Any]]:
    """``stored`` with ``delta``'s changes (a new mapping; ``stored`` is not touched)."""
    merged = dict(stored)
    merged.update(delta.changed)
    for vm_id in delta.gone:
        merged.pop(vm_id, None)
    return merged


def _moved(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return old != new and any(
        old.get(name, dflt) != new.get(name, dflt) for name, dflt in MATERIAL.items()
    )


def material_change(old: Observations, new: Observations) -> bool:
    """Whether a host's observations changed in what the planner reads; a VM's observation
    equal as a whole (compared in C, the common case) is not looked into."""
    return old.keys() != new.keys() or any(
        _moved(old[key], seen) for key, seen in new.items() if old[key] is not seen
    )


def delta_is_material(stored: Observations, delta: Delta) -> bool:
    """``material_change(stored, apply(stored, delta))``, looking only at what ``delta`` names."""
    if any(vm_id in stored for vm_id in delta.gone):
        return True
    return any(
        vm_id not in stored or _moved(stored[vm_id], seen) for vm_id, seen in delta.changed.items()
    )
