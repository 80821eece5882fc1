"""The immutable view of the system the loop publishes after every tick.

API handlers read ``Reconciler.view`` (one attribute read, no lock) and never see a half-made
state: a new view replaces the old one whole.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import model
from blacksmith_mini.domain.hostset import HostPlan

if TYPE_CHECKING:
    from blacksmith_mini.control.observer import RepoHealth


@dataclasses.dataclass(frozen=True, kw_only=True)
class GitHubHealth:
    reachable: bool | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    rate_limit_remaining: int | None = None
    rate_limit_limit: int | None = None
    rate_limit_reset_at: float | None = None
    blocked_until: float | None = None
    requests: int = 0
    not_modified: int = 0
    conditional: int = 0
    rate_limit_kind: str | None = None  # "primary" or "secondary" while blocked
    poll_interval_seconds: float | None = None  # between REST polls now (paced to budgets)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopHealth:
    started_at: float
    last_tick_at: float | None = None
    last_tick_duration_ms: float | None = None
    ticks: int = 0
    last_error: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Rates:
    spawn_rate_per_min: float | None
    death_rate_per_min: float | None
    pool_saturation_percent: float | None
    success_rate_percent: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class View:
    version: int  # increases with every published view
    content_version: int  # increases only when what the view shows has changed
    at: float
    policy: model.Policy
    vms: tuple[model.Vm, ...]  # active VMs, then recently gone ones
    open_jobs: tuple[model.Job, ...]
    recent_jobs: tuple[model.Job, ...]  # completed recently, newest first
    unmatched: dict[int, str]  # job id -> why no pool can run it
    waiting: dict[int, str]  # queued job id -> why it still waits
    pids: dict[int, int]
    rates: Rates
    github: GitHubHealth
    loop: LoopHealth
    kept: dict[int, float] = dataclasses.field(default_factory=dict)  # vm id -> kept until
    # open job id -> the pool that serves it (None: none), matched once per tick
    pools_of: dict[int, str | None] = dataclasses.field(default_factory=dict)
    repositories: tuple[RepoHealth, ...] = ()  # each polled repository's health
    backoff: dict[str, pool_backoff.PoolBackoff] = dataclasses.field(default_factory=dict)
    completed_jobs_total: int
    driver: str
    simulate: bool
    hosts: HostPlan | None = None  # many hosts: as the loop last saw them

    def content(self) -> tuple[object, ...]:
        """What the view shows, without its clock-driven fields (for change detection)."""
        return (
            self.vms,
            self.open_jobs,
            self.recent_jobs[:20],
            self.unmatched,
            self.waiting,
            self.pids,
            self.rates,
            self.github,
            self.kept,
            self.repositories,
            self.backoff,
            self.completed_jobs_total,
            self.policy,
        )

    @property
    def active_vms(self) -> tuple[model.Vm, ...]:
        return tuple(vm for vm in self.vms if vm.is_active)
