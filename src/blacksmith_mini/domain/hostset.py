"""The hosts the planner places VMs on this tick, and how (``Snapshot.hosts``). Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from blacksmith_mini.domain import placement


@dataclasses.dataclass(frozen=True, kw_only=True)
class HostPlan:
    """The hosts as observed this tick and how VMs are placed on them."""

    hosts: tuple[placement.Host, ...]
    strategy: placement.Strategy = placement.Strategy.SPREAD
    overcommit: placement.Overcommit = dataclasses.field(default_factory=placement.Overcommit)
    vm_disk_mib: int = 0
    weights: Mapping[str, float] = dataclasses.field(default_factory=dict)
    last_seen: Mapping[str, float] = dataclasses.field(default_factory=dict)  # last reports
