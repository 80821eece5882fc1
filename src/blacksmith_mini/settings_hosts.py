"""The ``[hosts]`` settings: many hosts run by agents (``vm.driver = "remote"``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat


class HostsSettings(BaseModel):
    """How the control plane treats its hosts' agents and places VMs on them."""

    lease_seconds: float = Field(
        default=15.0,
        ge=3,
        le=600,
        description="A host whose agent has not reported for this long is down: its VMs are "
        "written off and their capacity freed.",
    )
    heartbeat_seconds: float = Field(
        default=5.0, ge=0.5, le=120, description="How often agents report (under the lease)."
    )
    ack_timeout: float = Field(
        default=10.0,
        ge=1,
        le=300,
        description="Seconds an agent has to acknowledge a start before it counts as failed.",
    )
    placement: Literal["spread", "pack"] = Field(
        default="spread",
        description="spread: each VM to the emptiest host that fits; pack: to the fullest.",
    )
    cpu_overcommit: float = Field(
        default=1.0, ge=1.0, le=4.0, description="Reserved vCPUs may reach this x a host's."
    )
    memory_overcommit: float = Field(
        default=1.0, ge=1.0, le=4.0, description="Reserved memory may reach this x a host's."
    )
    vm_disk_mib: int = Field(
        default=0, ge=0, description="Disk each VM reserves on its host, MiB (its rootfs copy)."
    )
    repository_weights: dict[str, PositiveFloat] = Field(
        default_factory=dict,
        description="Fair-share weights by repository (owner/name -> weight; default 1).",
    )
