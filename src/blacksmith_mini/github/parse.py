"""Pydantic models for the few GitHub objects we read, and their conversion to domain values."""

from __future__ import annotations

import datetime
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict

from blacksmith_mini.domain import model
from blacksmith_mini.github import errors

M = TypeVar("M", bound=BaseModel)
RUNNABLE_STATUSES = {"queued", "in_progress", "completed"}


def epoch(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def iso(value: float) -> str:
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WorkflowJob(BaseModel):
    """A job as GitHub's REST API and the ``workflow_job`` webhook both describe it."""

    model_config = ConfigDict(extra="ignore")

    id: int
    run_id: int
    run_attempt: int = 1
    status: str
    conclusion: str | None = None
    labels: list[str]
    runner_name: str | None = None
    runner_id: int | None = None
    created_at: str | None = None  # some real webhook payloads omit it
    started_at: str | None = None
    completed_at: str | None = None
    name: str | None = None
    workflow_name: str | None = None
    html_url: str | None = None

    def to_domain(self, repository: str) -> model.Job | None:
        """The domain job, or None while GitHub holds it back (waiting, pending, requested)."""
        if self.status not in RUNNABLE_STATUSES:
            return None
        status = model.JobStatus(self.status)
        if status is model.JobStatus.QUEUED and self.runner_name:
            status = model.JobStatus.ASSIGNED
        created = epoch(self.created_at) or epoch(self.started_at) or 0.0
        started = epoch(self.started_at) if status is not model.JobStatus.QUEUED else None
        return model.Job(
            id=self.id,
            run_id=self.run_id,
            run_attempt=self.run_attempt,
            repository=repository,
            labels=tuple(self.labels),
            status=status,
            conclusion=self.conclusion if status is model.JobStatus.COMPLETED else None,
            name=self.name,
            workflow_name=self.workflow_name,
            runner_name=self.runner_name or None,
            html_url=self.html_url,
            created_at=created,
            started_at=started,
            completed_at=epoch(self.completed_at),
        )


class Runner(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    name: str
    status: str
    busy: bool

    def to_domain(self, scope: str) -> model.RunnerInfo:
        return model.RunnerInfo(
            id=self.id, name=self.name, scope=scope, status=self.status, busy=self.busy
        )


class JitConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    runner: Runner
    encoded_jit_config: str


class RunnerGroup(BaseModel):
    """An organization's runner group as GitHub lists it."""

    model_config = ConfigDict(extra="ignore")

    id: int
    name: str
    visibility: str = "all"
    allows_public_repositories: bool = False


def validated(model: type[M], raw: Any, *, url: str) -> M:
    """``model`` from GitHub's reply, or a ``GitHubError`` naming the URL and the problems."""
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        raise errors.GitHubError(
            f"GitHub replied with unexpected data on {url}: {problems}"
        ) from exc
