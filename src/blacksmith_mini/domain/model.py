"""The domain's immutable values: jobs, VMs, pools and the snapshot the planner reads."""

from __future__ import annotations

import dataclasses
import enum
import operator
from collections.abc import Mapping

from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import facts as vm_facts
from blacksmith_mini.domain.hostset import HostPlan


class JobStatus(enum.StrEnum):
    """Where a GitHub Actions job is. Only moves forward (see ``jobs.merge``)."""

    QUEUED = "queued"
    ASSIGNED = "assigned"  # a runner took it (runner_name known) but it has not started yet
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


JOB_STATUS_ORDER: dict[JobStatus, int] = {
    JobStatus.QUEUED: 0,
    JobStatus.ASSIGNED: 1,
    JobStatus.IN_PROGRESS: 2,
    JobStatus.COMPLETED: 3,
}


class VmState(enum.StrEnum):
    """Lifecycle of one runner VM. The allowed moves live in ``lifecycle.TRANSITIONS``."""

    PENDING = "pending"  # persisted and named; runner not registered or VM not started yet
    BOOTING = "booting"  # VM started; waiting for its runner to come online
    IDLE = "idle"  # runner online and waiting for a job
    BUSY = "busy"  # runner running a job
    STOPPING = "stopping"  # stop requested; waiting for the VM to exit
    GONE = "gone"  # exited and released; terminal


ACTIVE_VM_STATES: frozenset[VmState] = frozenset(
    {VmState.PENDING, VmState.BOOTING, VmState.IDLE, VmState.BUSY, VmState.STOPPING}
)

# The members again as plain constants, for the loops that run per VM or per job each tick:
# on Python 3.11 ``VmState.BUSY`` is a lookup through the enum's metaclass, about 0.2 µs,
# ten times a module global's, and the planner made several for each of 10,000 VMs a tick.
PENDING, BOOTING, IDLE = VmState.PENDING, VmState.BOOTING, VmState.IDLE
BUSY, STOPPING, GONE = VmState.BUSY, VmState.STOPPING, VmState.GONE
QUEUED, COMPLETED = JobStatus.QUEUED, JobStatus.COMPLETED


class DeathReason(enum.StrEnum):
    """Why a VM reached ``gone``."""

    JOB_FINISHED = "job_finished"
    BOOT_TIMEOUT = "boot_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    MAX_LIFETIME = "max_lifetime"
    CRASHED = "crashed"
    START_FAILED = "start_failed"
    STOPPED_BY_OPERATOR = "stopped_by_operator"
    SCALED_DOWN = "scaled_down"
    SHUTDOWN = "shutdown"
    ORPHAN = "orphan"
    HOST_LOST = "host_lost"  # its host's lease lapsed: written off


@dataclasses.dataclass(frozen=True, kw_only=True)
class Pool:
    """A kind of VM: the labels its runners register with, its size and its limits."""

    name: str
    labels: frozenset[str]  # lower-cased; always includes "self-hosted"
    vcpus: int = 2
    memory_mib: int = 4096
    min_idle: int = 0  # warm VMs kept idle per scope
    max_vms: int = 10
    max_idle: int | None = None  # above min_idle: the idle count follows demand (warmpool)
    idle_target: int | None = None  # what demand asks for now (None: min_idle)
    idle_reason: str | None = None  # why, in words
    rerun_infrastructure_failures: bool = False

    @property
    def warm(self) -> int:
        """The idle VMs kept per scope now: the demand's target, else ``min_idle``."""
        return self.min_idle if self.idle_target is None else self.idle_target

    def registration_labels(self) -> tuple[str, ...]:
        """The full label list sent to GitHub, ``self-hosted`` first, the rest sorted."""
        rest = sorted(label for label in self.labels if label != "self-hosted")
        return ("self-hosted", *rest)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Match:
    """The pool that serves a job, or why none does (``labels.match``)."""

    pool: Pool | None
    unmatched_reason: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """A GitHub Actions job. Times are epoch seconds, ``None`` until reached."""

    id: int
    run_id: int
    run_attempt: int = 1
    repository: str  # owner/name
    labels: tuple[str, ...]
    status: JobStatus
    conclusion: str | None = None
    name: str | None = None
    workflow_name: str | None = None
    runner_name: str | None = None
    html_url: str | None = None
    created_at: float
    started_at: float | None = None
    completed_at: float | None = None
    vm_requested_at: float | None = None
    vm_ready_at: float | None = None
    vm_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status is not JobStatus.COMPLETED


JOB_AGE = operator.attrgetter("created_at", "id")  # sorts jobs oldest first, ties by id


@dataclasses.dataclass(frozen=True, kw_only=True)
class Vm:
    """A runner VM as the control plane records it."""

    vm_id: int
    name: str  # runner name; unique; persisted before any external call
    pool: str
    scope: str  # owner/repo, or org:NAME
    labels: tuple[str, ...]
    vcpus: int
    memory_mib: int
    state: VmState
    state_since: float
    created_at: float
    ready_at: float | None = None
    ended_at: float | None = None
    job_id: int | None = None
    pid: int | None = None
    ip: str | None = None
    death_reason: DeathReason | None = None
    runner_id: int | None = None  # GitHub's id once registered
    stop_reason: DeathReason | None = None  # why a stop was requested
    ran_job: bool = False
    host: str | None = None  # where it runs (None: the in-process host of one box)

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_VM_STATES


@dataclasses.dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds each VM state may last before the planner acts."""

    pending: float = 120.0
    boot: float = 180.0
    idle: float = 300.0
    max_lifetime: float = 6 * 3600.0
    stopping: float = 30.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Policy:
    """What the planner must respect."""

    max_vms: int
    pools: tuple[Pool, ...]
    scopes: tuple[str, ...]  # where runners are registered (owner/repo or org:NAME)
    # Starts one tick makes at most, in fair order (0: no limit). Each start registers a
    # runner, a mutation GitHub wants about a second apart: a tick's acts must stay short.
    max_starts_per_tick: int = 0
    timeouts: Timeouts = Timeouts()
    org_scope: bool = False  # True: every repository's jobs are served by runners of scopes[0]
    paused_pools: frozenset[str] = frozenset()
    draining: bool = False
    # At organization scope: lower-cased repository -> why the runner group does not serve it.
    unserved: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Operators' persisted requests to stop a VM: vm id -> forced (a busy VM only if forced).
    stop_requests: Mapping[int, bool] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerInfo:
    """A runner as GitHub lists it."""

    id: int
    name: str
    scope: str
    status: str  # online | offline
    busy: bool


@dataclasses.dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What the planner sees: open jobs, active VMs and our runners at GitHub."""

    jobs: tuple[Job, ...]
    vms: tuple[Vm, ...]
    runners: tuple[RunnerInfo, ...] | None = None  # None: not observed this tick
    facts: Mapping[int, vm_facts.VmFacts] | None = None  # None: driver not observed this tick
    # Gone VMs that ran a job GitHub has not told us about yet: each consumed one queued job.
    consumed: tuple[Vm, ...] = ()
    # Pools whose starts keep failing: no start there before their next try.
    backoff: Mapping[str, pool_backoff.PoolBackoff] = dataclasses.field(default_factory=dict)
    # How long GitHub may take to show that a runner took a job (its ``busy`` flag and the
    # job's status lag): a VM whose runner says it took a job covers one queued job that long.
    lag_allowance: float = 60.0
    # Many hosts: where VMs may go this tick (None: one box, no placement).
    hosts: HostPlan | None = None
