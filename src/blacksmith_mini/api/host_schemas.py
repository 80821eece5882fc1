"""The hosts resource's JSON shapes (``/api/hosts``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HostStateName = Literal["up", "cordoned", "draining", "down", "revoked"]


class Resources(BaseModel):
    vcpus: int
    memory_mib: int
    disk_mib: int


class HostOut(BaseModel):
    name: str
    state: HostStateName = Field(
        description="up takes VMs; cordoned and draining take none (draining empties); down: "
        "no heartbeat within the lease (its VMs were written off); revoked: token revoked."
    )
    admin_state: Literal["up", "cordoned", "draining"]
    in_process: bool = Field(description="The one-box host inside the control plane.")
    arch: str | None
    drivers: list[str]
    capacity: Resources | None = Field(description="What it offers (before overcommit).")
    reserved: Resources = Field(description="What its active VMs hold.")
    vms: int = Field(description="Active VMs on it.")
    heartbeat_age_seconds: float | None = Field(description="Seconds since its last report.")
    versions: dict[str, str]
    down_since: float | None
    down_reason: str | None
    created_at: float | None


class HostList(BaseModel):
    hosts: list[HostOut]
    lease_seconds: float
    placement: Literal["spread", "pack"]


class HostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Unique host name.")


class HostCreated(BaseModel):
    name: str
    token: str = Field(description="The agent's token: shown once, stored only hashed.")
    next_step: str


class HostAction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(default="", max_length=500, description="Why; recorded with the event.")
