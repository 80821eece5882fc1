"""Response and request models of the HTTP API.

These pydantic models are the contract with the dashboard: its TypeScript types are generated
from the OpenAPI document built from them (``scripts/gen-api-types.sh``). ``StatusResponse`` keeps
every field of the seed's ``GET /api/status`` with the same names and types; the rest is extra.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

VmStatus = Literal["pending", "booting", "idle", "busy", "stopping", "gone"]
JobStatus = Literal["queued", "assigned", "in_progress", "completed"]


class Metrics(BaseModel):
    """The seed's four headline figures. Each is null when there is no data to compute it from."""

    spawn_rate_per_min: float | None = Field(
        description="VMs started per minute over the last 5 minutes (or since start-up if shorter)."
    )
    death_rate_per_min: float | None = Field(
        description="VMs that reached `gone` per minute over the same window."
    )
    pool_saturation_percent: float | None = Field(
        description="Active (non-gone) VMs as a percentage of max_vms, right now."
    )
    success_rate_percent: float | None = Field(
        description="Share of completed jobs (all time, kept across restarts) whose conclusion is "
        "`success`, ignoring `cancelled` and `skipped`."
    )


class VmOut(BaseModel):
    """One VM, as the seed showed it plus its pool, labels, job and timestamps."""

    vm_id: int
    ip: str | None
    status: VmStatus
    pid: int | None
    start_time: int = Field(description="Epoch seconds when the VM was requested.")
    uptime_seconds: int
    name: str = Field(description="Runner name registered at GitHub; unique.")
    pool: str
    labels: list[str]
    vcpus: int
    memory_mib: int
    scope: str = Field(description="Where the runner is registered: `owner/repo` or `org:NAME`.")
    job_id: int | None
    state_since: float = Field(description="Epoch seconds when the VM entered its status.")
    deadline: float | None = Field(description="Epoch seconds when the status times out.")
    ready_at: float | None
    ended_at: float | None
    death_reason: str | None
    kept_until: float | None = Field(
        default=None,
        description="The job failed and the VM is kept for `blacksmith-mini ssh` until then "
        "(epoch seconds; keep_on_failure_minutes).",
    )
    host: str | None = Field(
        default=None,
        description="The host it runs on (null: the in-process host of one box).",
    )


class JobStages(BaseModel):
    """Epoch-second timestamps of each stage of a job; null until reached."""

    queued: float | None
    vm_requested: float | None
    vm_ready: float | None
    started: float | None
    completed: float | None


class JobOut(BaseModel):
    """One GitHub Actions job as we know it."""

    id: int
    run_id: int
    run_attempt: int
    repository: str
    workflow_name: str | None
    name: str | None
    labels: list[str]
    status: JobStatus
    conclusion: str | None
    runner_name: str | None
    vm_id: int | None
    pool: str | None
    unmatched_reason: str | None = Field(description="Why no pool can run the job, if none can.")
    html_url: str | None
    stages: JobStages
    waiting_reason: str | None = Field(description="Why a queued job is still waiting, if it is.")


class StartBackoff(BaseModel):
    """Starts in a pool keep failing: no VM is started there before ``next_try_at``."""

    failures: int = Field(description="Consecutive failed starts or registrations.")
    reason: str = Field(description="The last failure, with its fix.")
    next_try_at: float = Field(description="Epoch seconds of the next attempt.")
    since: float = Field(description="Epoch seconds of the first failure in this series.")


class PoolOut(BaseModel):
    name: str
    labels: list[str]
    vcpus: int
    memory_mib: int
    min_idle: int
    max_vms: int
    max_idle: int | None = Field(
        default=None, description="Set above min_idle: the idle VMs kept follow demand."
    )
    idle_target: int = Field(description="Idle VMs kept per scope now.")
    idle_reason: str = Field(description="Why that many: the demand figure and the bound.")
    idle_vm_minutes_last_hour: float = Field(
        default=0.0, description="VM-minutes its VMs sat idle over the last hour (whole minutes)."
    )
    queued_jobs: int
    vms_by_status: dict[str, int]
    paused: bool
    start_backoff: StartBackoff | None = Field(
        default=None, description="Set while starts in this pool keep failing."
    )


class RepositoryHealth(BaseModel):
    """One polled repository: healthy, or what is wrong with it and the fix."""

    name: str = Field(description="`owner/repo` as configured.")
    healthy: bool
    error: str | None = Field(description="Why it cannot be polled (404, 403, ...), with the fix.")
    moved_to: str | None = Field(description="Its new name when GitHub answered 301.")
    last_polled_at: float | None


class GitHubHealth(BaseModel):
    reachable: bool | None = Field(description="Null before the first call.")
    last_ok_at: float | None
    last_error: str | None
    rate_limit_remaining: int | None
    rate_limit_limit: int | None
    rate_limit_reset_at: float | None
    blocked_until: float | None = Field(description="No calls until then (rate limit back-off).")
    requests_total: int = Field(description="REST requests sent since start-up.")
    not_modified_total: int = Field(description="Of those, answered 304 (free).")
    poll_interval_seconds: float | None = Field(
        default=None,
        description="Seconds between REST polls now: the configured interval, stretched to "
        "stay inside GitHub's budgets when a poll costs many requests.",
    )
    rate_limit_kind: Literal["primary", "secondary"] | None = Field(
        default=None, description="Which limit blocks us while blocked_until is set."
    )
    repositories: list[RepositoryHealth] = Field(
        default_factory=list, description="Each polled repository's health."
    )


class LoopHealth(BaseModel):
    last_tick_at: float | None
    last_tick_duration_ms: float | None
    ticks: int
    last_error: str | None
    stuck: bool


class StatusResponse(BaseModel):
    """`GET /api/status`: the seed's payload plus pools, health and unmatched jobs."""

    model_config = ConfigDict(json_schema_extra={"title": "StatusResponse"})

    timestamp: str = Field(description="ISO 8601 UTC time of the snapshot.")
    active_vms_count: int
    max_vms: int
    queued_jobs_count: int
    vms: list[VmOut]
    queued_jobs: list[JobOut]
    metrics: Metrics
    running_jobs: list[JobOut]
    unmatched_jobs: list[JobOut]
    pools: list[PoolOut]
    github: GitHubHealth
    loop: LoopHealth
    driver: str
    simulate: bool
    completed_jobs_total: int
    snapshot_version: int
    draining: bool


class VmListResponse(BaseModel):
    vms: list[VmOut]


class VmDetail(VmOut):
    console_tail: str = Field(description="The end of the VM's console output (bounded).")
    events: list[EventOut]


class EventOut(BaseModel):
    id: int
    at: float
    kind: str
    vm_id: int | None
    job_id: int | None
    message: str
    actor: str = "system"


class JobListResponse(BaseModel):
    jobs: list[JobOut]


class JobDetail(JobOut):
    events: list[EventOut]


class HealthResponse(BaseModel):
    status: Literal["ok", "degraded", "stuck"]
    loop: LoopHealth
    github: GitHubHealth
    driver: str
    database: str


class HistoryPoint(BaseModel):
    at: float
    active_vms: float | None
    queued_jobs: float | None
    spawns: float | None = Field(description="VMs started during the sample's interval.")
    deaths: float | None
    queue_to_start_p50: float | None = Field(description="Seconds, jobs started in the interval.")
    queue_to_start_p95: float | None


class HistoryResponse(BaseModel):
    window: Literal["1h", "24h", "7d"]
    step_seconds: int
    points: list[HistoryPoint]


Label = Annotated[str, Field(pattern=r"[^ \t\n\r\f\v]", description="Not empty, not only blanks.")]


class SimulatedJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    labels: list[Label] | None = Field(
        default=None,
        max_length=100,
        description="runs-on labels (at most 100); empty or absent: the first pool's labels.",
    )
    duration_seconds: float = Field(default=5.0, ge=0, le=24 * 3600)
    conclusion: Literal["success", "failure", "cancelled", "timed_out"] = "success"
    repository: str | None = Field(default=None, description="owner/repo; defaults to the first.")


class SimulatedJobResponse(BaseModel):
    id: int
    run_id: int
    repository: str
    labels: list[str]


class ErrorResponse(BaseModel):
    detail: str


def error_response(description: str) -> dict[str, Any]:
    """One documented error answer: ``{"detail": "..."}``."""
    return {"model": ErrorResponse, "description": description}


# What the access control in ``api/app.py`` can answer before any route runs (health and
# webhooks are public): 401 for a missing or wrong token, 413 for a declared body over 1 MB,
# and, for changes, 403 when only a read token is configured.
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: error_response("A token is configured and this request's is missing or wrong."),
    413: error_response("The declared body is over 1 MB, or Content-Length is not a number."),
}
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: error_response("Changes are disabled: only a read token (server.api_token) is set."),
}


class WebhookAnswer(BaseModel):
    detail: str


class OperatorRequest(BaseModel):
    # Strict, as the schema says: ``false`` is no number, ``"5"`` no integer.
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(default="", max_length=500, description="Why; recorded with the event.")


class StopVmRequest(OperatorRequest):
    force: bool = Field(default=False, description="Stop even a busy VM (its job fails).")


class PoolLimitsRequest(OperatorRequest):
    min_idle: int | None = Field(default=None, ge=0, le=10_000)
    max_vms: int | None = Field(default=None, ge=0, le=100_000)

    @field_validator("min_idle", "max_vms", mode="before")
    @classmethod
    def _whole(cls, value: object) -> object:
        """JSON Schema's ``integer`` includes ``5.0``; strict pydantic's ``int`` does not."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


class PoolLimits(BaseModel):
    name: str
    min_idle: int
    max_vms: int
    paused: bool


class ControlState(BaseModel):
    draining: bool
    draining_since: float | None = Field(description="Epoch seconds of the last drain/resume.")
    draining_by: str | None = Field(description="Who drained (or resumed) last.")
    draining_reason: str | None
    paused_pools: list[str]
    pools: list[PoolLimits]


class AuditResponse(BaseModel):
    events: list[EventOut]


AuditResponse.model_rebuild()
VmDetail.model_rebuild()
JobDetail.model_rebuild()
