"""What the control plane knows of each host and of the commands sent to its agent. Pure.

A host is down when its lease has lapsed: no heartbeat for ``lease_seconds`` (or never
connected). ``placement_host`` turns a record into placement's view of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from blacksmith_mini.domain import placement


@dataclasses.dataclass(frozen=True, kw_only=True)
class HostRecord:
    name: str
    created_at: float
    revoked_at: float | None
    admin_state: str  # up, cordoned, draining (the operator's)
    session: int  # +1 per agent hello: the fence of its messages
    report: Mapping[str, Any]  # capacity, architecture, drivers, versions (wire.HostReport)
    observations: Mapping[str, Any]  # str(vm_id) -> the agent's observation of it
    last_seen: float | None
    down_since: float | None
    down_reason: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class HostCommand:
    id: int
    host: str
    key: str  # kind:vm_id[:attempt]: the idempotency key
    kind: str
    vm_id: int
    payload: Mapping[str, Any]
    created_at: float
    acked_at: float | None
    result: Mapping[str, Any] | None


def lapsed(host: HostRecord, *, now: float, lease_seconds: float) -> bool:
    """Whether ``host``'s lease has lapsed (or it never connected)."""
    return host.last_seen is None or now - host.last_seen > lease_seconds


def placement_host(host: HostRecord, *, now: float, lease_seconds: float) -> placement.Host:
    """The host as placement sees it: down when its lease lapsed or its token was revoked."""
    report = host.report
    if host.revoked_at is not None or lapsed(host, now=now, lease_seconds=lease_seconds):
        state = placement.HostState.DOWN
    else:
        state = placement.HostState(host.admin_state)
    return placement.Host(
        name=host.name,
        arch=str(report.get("arch", "x64")),
        vcpus=int(report.get("vcpus", 0)),
        memory_mib=int(report.get("memory_mib", 0)),
        disk_mib=int(report.get("disk_mib", 0)),
        state=state,
        drivers=frozenset(str(d) for d in report.get("drivers", ())),
    )
