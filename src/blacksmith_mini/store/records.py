"""Plain records the store returns besides domain values (events, samples, counters)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    id: int
    at: float
    kind: str
    vm_id: int | None
    job_id: int | None
    message: str
    actor: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    at: float
    step_seconds: int
    active_vms: float
    queued_jobs: float
    spawns: float
    deaths: float
    queue_to_start_p50: float | None
    queue_to_start_p95: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Counters:
    completed_jobs: int
    successful_jobs: int
    rated_jobs: int  # completed jobs whose conclusion counts toward the success rate


UNRATED_CONCLUSIONS = ("cancelled", "skipped")
