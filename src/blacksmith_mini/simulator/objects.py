"""The simulated GitHub's objects: runs, jobs, runners, repositories and runner groups.

Plain dataclasses, persisted as JSON by ``state.SimState``; the rules live in ``state``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import NamedTuple


class Conflict(Exception):
    """409: the name is taken."""


class Busy(Exception):
    """422: the runner is running a job."""


class Missing(Exception):
    """404."""


class JobSpec(NamedTuple):
    """One job of a run to queue: ``(labels, duration, conclusion, name)``."""

    labels: list[str]
    duration: float
    conclusion: str = "success"
    name: str = "build"


@dataclasses.dataclass
class SimJob:
    id: int
    run_id: int
    repository: str
    labels: list[str]
    duration: float
    planned_conclusion: str
    name: str
    workflow_name: str
    created_at: float
    run_attempt: int = 1
    status: str = "queued"
    conclusion: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    runner_id: int | None = None
    runner_name: str | None = None
    runner_group_id: int | None = None
    assigned_at: float | None = None  # queued with a runner: assigned, not yet started


@dataclasses.dataclass
class SimRun:
    id: int
    repository: str
    name: str
    created_at: float
    updated_at: float
    run_number: int
    job_ids: list[int] = dataclasses.field(default_factory=list)
    status: str = "queued"
    conclusion: str | None = None
    held_status: str | None = None  # requested | waiting | pending while no job has started


@dataclasses.dataclass
class SimRunner:
    id: int
    name: str
    scope: str
    labels: list[str]
    group_id: int
    secret: str
    status: str = "offline"
    busy: bool = False
    job_id: int | None = None
    last_seen: float = 0.0
    ran_job: bool = False


@dataclasses.dataclass
class SimRepository:
    id: int
    full_name: str
    private: bool = True
    removed: bool = False  # deleted, or the App lost access: 404
    forbidden: bool = False  # 403 "Resource not accessible by integration"


@dataclasses.dataclass
class SimGroup:
    """An organization runner group; GitHub's default group does not serve public repos."""

    id: int
    name: str
    visibility: str = "all"  # all | selected | private
    allows_public_repositories: bool = False
    repository_ids: list[int] = dataclasses.field(default_factory=list)

    def serves(self, repo: SimRepository) -> bool:
        """Whether GitHub would hand this group's runners a job of ``repo``."""
        if not repo.private and not self.allows_public_repositories:
            return False
        if self.visibility == "selected":
            return repo.id in self.repository_ids
        if self.visibility == "private":
            return repo.private
        return True


@dataclasses.dataclass(frozen=True)
class Change:
    """One thing that changed, for listeners (the loop's wake-up, the webhook sender)."""

    kind: str  # "workflow_job"
    action: str  # queued | in_progress | completed
    job_id: int


def encode_jit_config(runner: SimRunner, *, pool_name: str, broker_url: str) -> str:
    """The base64 JSON of the runner files ``run.sh --jitconfig`` unpacks, as GitHub's."""

    def b64json(value: object) -> str:
        return base64.b64encode(json.dumps(value).encode()).decode()

    runner_file = {
        "agentId": str(runner.id),
        "agentName": runner.name,
        "poolId": str(runner.group_id),
        "poolName": pool_name,
        "serverUrl": broker_url,
        "gitHubUrl": f"https://github.com/{runner.scope.removeprefix('org:')}",
        "workFolder": "_work",
        "ephemeral": "true",
        "useV2Flow": "true",
    }
    credentials = {
        "scheme": "OAuth",
        "data": {
            "clientId": f"sim-{runner.id}",
            "authorizationUrl": f"{broker_url}/oauth2/token",
            "requireFipsCryptography": "False",
        },
    }
    return b64json(
        {
            ".runner": b64json(runner_file),
            ".credentials": b64json(credentials),
            ".credentials_rsaparams": b64json({"d": runner.secret, "exponent": "AQAB"}),
        }
    )
