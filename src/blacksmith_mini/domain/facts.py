"""Facts about VMs the control loop gathers from the driver, in domain terms."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class VmFacts:
    """What the driver reports about one VM this tick."""

    alive: bool
    runner_online: bool = False
    job_started: bool = False
    job_finished: bool = False
    exit_code: int | None = None
    pid: int | None = None
    ip: str | None = None
    kept_until: float | None = None  # a failed job's VM kept for inspection until then
    host_lost: bool = False  # its host's lease lapsed: the VM is written off
