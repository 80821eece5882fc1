"""The agent protocol's messages, shared by the control plane's routes and the agent.

An agent connects out (hosts may sit behind NAT) with its host token:

1. ``POST /api/agent/hello`` with its ``HostReport`` and observations. The answer holds a new
   ``session`` (every later message carries it; a message from a replaced session is refused
   with 409) and ``written_off``: VMs it reports that the control plane gave up (gone, never
   given to it, another host's). The agent kills and releases those before taking work.
2. ``GET /api/agent/commands?session=N&wait=S`` (long poll): its unacknowledged commands,
   oldest first, each with an idempotency ``key``.
3. ``POST /api/agent/report``: its observations and the commands it has carried out, with
   their results, in one message; also its heartbeat (every ``heartbeat_seconds``). Missing
   heartbeats for ``lease_seconds`` make the host down and its VMs written off. Since
   protocol 2 an agent sends its observations whole once, then only what changed against
   the version the control plane answered (``Report.base``; ``store.observed``).
4. ``POST /api/agent/cache-claim`` (hosts serving the Actions cache): what one of its VMs'
   cache tokens allows, resolved by the control plane from the VM's job (the agent holds no
   GitHub credential, so it cannot tell a job's repository or branch itself).

Connections are kept alive between reports: an agent drops one it has not used for
``AGENT_IDLE_SECONDS``, the control plane only after ``SERVER_KEEP_ALIVE_SECONDS``, so the
agent always closes first. With both at the HTTP stacks' default of 5 s (uvicorn's, httpx's)
and a report every 5 s, each report would race the server closing its connection: a refused
report, or a new connection (and TLS handshake behind a proxy) for every heartbeat.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from blacksmith_mini.vm import driver as vm_driver

CommandKind = Literal["start", "stop", "kill", "release", "console"]
PROTOCOL_VERSION = 2  # 2: reports may send what changed (``Report.base``)
PROTOCOLS = (1, 2)  # what the control plane speaks: agents of either connect
AGENT_IDLE_SECONDS = 60.0  # > heartbeat_seconds' default: reports reuse their connection
SERVER_KEEP_ALIVE_SECONDS = 75  # > AGENT_IDLE_SECONDS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HostReport(Strict):
    """What a host is and has: capacity before overcommit, architecture, drivers, versions."""

    arch: Literal["x64", "arm64", "arm"] = "x64"
    vcpus: int = Field(ge=1, le=4096, description="vCPUs the host offers to VMs")
    memory_mib: int = Field(ge=128, le=64 * 1024 * 1024, description="memory for VMs, MiB")
    disk_mib: int = Field(ge=0, le=1024 * 1024 * 1024, description="disk for VMs, MiB")
    drivers: list[Literal["local", "firecracker"]] = Field(min_length=1, max_length=4)
    versions: dict[str, str] = Field(
        default_factory=dict, description="agent, image, kernel, firecracker versions"
    )


class Observation(Strict):
    """``VmObservation`` on the wire."""

    vm_id: int = Field(ge=1)
    name: str = Field(max_length=100)
    alive: bool
    started_at: float
    pid: int | None = None
    ip: str | None = Field(default=None, max_length=64)
    runner_online: bool = False
    job_started: bool = False
    job_finished: bool = False
    exit_code: int | None = None
    exit_signal: int | None = None
    ended_at: float | None = None
    detail: str | None = Field(default=None, max_length=2000)
    kept_until: float | None = None


class Hello(Strict):
    protocol: int = PROTOCOL_VERSION
    report: HostReport
    observations: list[Observation] = Field(default_factory=list)


class HelloReply(Strict):
    host: str
    session: int
    written_off: list[int]
    heartbeat_seconds: float
    lease_seconds: float


class Command(Strict):
    id: int
    key: str
    kind: CommandKind
    vm_id: int
    payload: dict[str, Any]


class Commands(Strict):
    commands: list[Command]


class Ack(Strict):
    """A command carried out: ``ok`` with its result, or ``error`` naming the problem."""

    id: int
    key: str
    ok: bool
    error: str | None = Field(default=None, max_length=2000)
    observation: Observation | None = None
    output: str | None = Field(default=None, max_length=256 * 1024)


class Report(Strict):
    """A heartbeat. Its observations go whole (``observations``), or as what changed since
    the stored version ``base`` names (``changed``, ``gone``), or not at all (the same as
    last time: one UPDATE). A report that carries ``base`` (protocol 2; None: it has no
    version yet) is answered with the version then stored (``ReportReply.observed``)."""

    session: int
    # None: the same as in this session's last report (a bare heartbeat: one UPDATE).
    observations: list[Observation] | None = None
    acks: list[Ack] = Field(default_factory=list)
    base: str | None = Field(default=None, max_length=64)
    changed: list[Observation] = Field(default_factory=list)
    gone: list[int] = Field(default_factory=list)


class ReportReply(Strict):
    written_off: list[int]
    lease_seconds: float
    # Protocol 2, sent only to a report that carried ``base`` (a protocol-1 agent's replies
    # keep their two fields): the version of the observations stored now; ``resend``: the
    # report's changes were of another version and were not applied, so send them whole.
    observed: str | None = None
    resend: bool = False


class CacheClaimRequest(Strict):
    session: int
    vm_id: int = Field(ge=1)


class CacheClaimReply(Strict):
    """The repository a VM's cache calls act for, the scopes it reads (in lookup order) and
    the one it writes (None: reads only), until ``expires_at`` (epoch seconds)."""

    repository: str
    write: str | None
    reads: list[str]
    expires_at: int


_BY_VM_ID: TypeAdapter[dict[str, Observation]] = TypeAdapter(dict[str, Observation])


def encode_observations(items: Sequence[Observation]) -> bytes:
    """Observations as the control plane stores them, ``{vm_id: observation}`` in compact JSON,
    encoded in one call (``store.hosts.encode_observations`` of their dumps: the same bytes)."""
    return _BY_VM_ID.dump_json({str(item.vm_id): item for item in items})


def changes(
    before: Mapping[int, Mapping[str, Any]], now: Mapping[int, Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[int]]:
    """What an agent's report sends against the version the control plane holds
    (``before``, by VM id): the observations that changed or are new, the VMs gone."""
    changed = [seen for vm_id, seen in now.items() if before.get(vm_id) != seen]
    return changed, [vm_id for vm_id in before if vm_id not in now]


def observation_to_wire(seen: vm_driver.VmObservation) -> Observation:
    values = dataclasses.asdict(seen)
    values.pop("host_lost", None)
    return Observation(**values)


def observation_from_wire(seen: Observation | dict[str, Any]) -> vm_driver.VmObservation:
    values = seen.model_dump() if isinstance(seen, Observation) else dict(seen)
    return vm_driver.VmObservation(**values)


def spec_payload(spec: vm_driver.VmSpec) -> dict[str, Any]:
    """A start command's payload (it carries the JIT config: wiped once acknowledged)."""
    return {
        "name": spec.name,
        "pool": spec.pool,
        "labels": list(spec.labels),
        "vcpus": spec.vcpus,
        "memory_mib": spec.memory_mib,
        "jit_config": spec.jit_config,
        "ssh_public_key": spec.ssh_public_key,
    }


def spec_from_payload(vm_id: int, payload: dict[str, Any]) -> vm_driver.VmSpec:
    return vm_driver.VmSpec(
        vm_id=vm_id,
        name=str(payload["name"]),
        pool=str(payload["pool"]),
        labels=tuple(str(label) for label in payload.get("labels", ())),
        vcpus=int(payload["vcpus"]),
        memory_mib=int(payload["memory_mib"]),
        jit_config=str(payload.get("jit_config", "")),
        ssh_public_key=payload.get("ssh_public_key"),
    )
