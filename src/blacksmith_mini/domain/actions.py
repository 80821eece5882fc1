"""What the planner asks for. Values only; the control loop performs them in one place."""

from __future__ import annotations

import dataclasses

from blacksmith_mini.domain import model


@dataclasses.dataclass(frozen=True, kw_only=True)
class StartVm:
    """Create (persist, name, register, boot) one VM of ``pool`` registered in ``scope``.

    ``job_id`` is the queued job this start was counted for (its "VM requested" stage is
    stamped); None for a warm-pool start. Effects never decide it again.
    """

    pool: str
    scope: str
    reason: str
    job_id: int | None = None
    host: str | None = None  # chosen by placement when there are hosts (None: one box)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResumeStart:
    """Carry on starting a VM that is persisted as pending (an earlier attempt was cut short)."""

    vm_id: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class StopVm:
    """Stop a VM that is not busy. ``force`` kills it instead of asking it to shut down."""

    vm_id: int
    reason: model.DeathReason
    force: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Transition:
    """Record a state change observed from the driver or GitHub."""

    vm_id: int
    target: model.VmState
    reason: model.DeathReason | None = None
    job_id: int | None = None
    note: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeregisterRunner:
    """Delete one of our runners at GitHub (offline, not busy, no live VM)."""

    runner_id: int
    name: str
    scope: str
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class RerunJob:
    """Ask GitHub to re-run a job our infrastructure failed (``domain/reruns.py``), once.

    ``key`` names the logical job across attempts (``reruns.rerun_key``): it is persisted
    before GitHub is called, so the job is never re-run twice. ``vm_id`` is the VM that failed
    it and ``cause`` that VM's death reason.
    """

    repository: str
    job_id: int
    reason: str
    key: str
    vm_id: int | None = None
    cause: model.DeathReason | None = None


Action = StartVm | ResumeStart | StopVm | Transition | DeregisterRunner
