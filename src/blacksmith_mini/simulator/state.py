"""The simulated GitHub's state: runs, jobs and runners, and the rules GitHub applies to them.

Synchronous and in memory; the REST and broker routes in ``github_api`` are thin wrappers.
Rules kept from the real service (``../shared/reference/github.md``): a JIT runner takes any
queued job whose labels it all has (case-insensitive), takes one job and is then removed;
a duplicate runner name is a 409; deleting a busy runner is a 422; a runner that stops
talking goes offline and its job fails.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import secrets
import time
from collections.abc import Callable, Sequence

LOST_AFTER_SECONDS = 15.0
KEEP_COMPLETED_SECONDS = 3600.0
REPO_OWNER_ID = 9919


class Conflict(Exception):
    """409: the name is taken."""


class Busy(Exception):
    """422: the runner is running a job."""


class Missing(Exception):
    """404."""


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


@dataclasses.dataclass(frozen=True)
class Change:
    """One thing that changed, for listeners (the loop's wake-up, the webhook sender)."""

    kind: str  # "workflow_job"
    action: str  # queued | in_progress | completed
    job_id: int


class SimState:
    def __init__(
        self,
        *,
        repositories: Sequence[str],
        broker_url: str = "http://127.0.0.1:8000/_sim/broker",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repositories = [repo.lower() for repo in repositories]
        self.broker_url = broker_url
        self.clock = clock
        self.runs: dict[int, SimRun] = {}
        self.jobs: dict[int, SimJob] = {}
        self.runners: dict[int, SimRunner] = {}
        self.next_ids = {"run": 7_000_000_001, "job": 20_000_000_001, "runner": 101, "number": 1}
        self.listeners: list[Callable[[Change], None]] = []
        self.group_ids = {1: "Default"}
        self.path: pathlib.Path | None = None

    # --- persistence: GitHub outlives our process, so the simulated one does too ---------

    def attach(self, path: pathlib.Path) -> None:
        """Load the state saved at ``path`` (if any) and save every change there."""
        self.path = path
        if path.exists():
            saved = json.loads(path.read_text())
            self.runs = {int(k): SimRun(**v) for k, v in saved["runs"].items()}
            self.jobs = {int(k): SimJob(**v) for k, v in saved["jobs"].items()}
            self.runners = {int(k): SimRunner(**v) for k, v in saved["runners"].items()}
            now = self.clock()
            for runner in self.runners.values():
                runner.last_seen = now  # give live runners time to call in again
            self.next_ids = saved["next"]

    def save(self) -> None:
        if self.path is None:
            return
        cutoff = self.clock() - KEEP_COMPLETED_SECONDS
        for run in [r for r in self.runs.values() if r.status == "completed"]:
            if run.updated_at < cutoff:
                for job_id in run.job_ids:
                    self.jobs.pop(job_id, None)
                del self.runs[run.id]
        state = {
            "runs": {k: dataclasses.asdict(v) for k, v in self.runs.items()},
            "jobs": {k: dataclasses.asdict(v) for k, v in self.jobs.items()},
            "runners": {k: dataclasses.asdict(v) for k, v in self.runners.items()},
            "next": self.next_ids,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.path)

    def _take(self, kind: str) -> int:
        value = self.next_ids[kind]
        self.next_ids[kind] = value + 1
        return value

    def _emit(self, action: str, job: SimJob) -> None:
        self.save()
        for listener in list(self.listeners):
            listener(Change(kind="workflow_job", action=action, job_id=job.id))

    # --- jobs ------------------------------------------------------------------------------

    def queue_job(
        self,
        *,
        repository: str,
        labels: Sequence[str],
        duration: float,
        conclusion: str,
        name: str = "build",
        workflow_name: str = "CI",
    ) -> SimJob:
        repository = repository.lower()
        if repository not in self.repositories:
            raise Missing(f"repository {repository} is not simulated")
        now = self.clock()
        run = SimRun(
            id=self._take("run"),
            repository=repository,
            name=workflow_name,
            created_at=now,
            updated_at=now,
            run_number=self._take("number"),
        )
        job = SimJob(
            id=self._take("job"),
            run_id=run.id,
            repository=repository,
            labels=list(labels),
            duration=duration,
            planned_conclusion=conclusion,
            name=name,
            workflow_name=workflow_name,
            created_at=now,
        )
        run.job_ids.append(job.id)
        self.runs[run.id] = run
        self.jobs[job.id] = job
        self._emit("queued", job)
        return job

    def _refresh_run(self, run: SimRun) -> None:
        jobs = [self.jobs[job_id] for job_id in run.job_ids]
        run.updated_at = self.clock()
        if all(job.status == "completed" for job in jobs):
            run.status = "completed"
            failed = [job.conclusion for job in jobs if job.conclusion != "success"]
            run.conclusion = failed[0] if failed else "success"
        elif any(job.status != "queued" for job in jobs):
            run.status = "in_progress"
        else:
            run.status = "queued"

    # --- runners (REST side) ---------------------------------------------------------------

    def register(
        self, *, scope: str, name: str, labels: Sequence[str], group_id: int
    ) -> tuple[SimRunner, str]:
        if any(runner.name == name and runner.scope == scope for runner in self.runners.values()):
            raise Conflict(f"A runner with the name {name} already exists.")
        if group_id not in self.group_ids:
            raise Missing(f"Runner group {group_id} not found")
        runner = SimRunner(
            id=self._take("runner"),
            name=name,
            scope=scope,
            labels=list(labels),
            group_id=group_id,
            secret=secrets.token_urlsafe(24),
        )
        self.runners[runner.id] = runner
        self.save()
        return runner, self._encode_jit_config(runner)

    def _encode_jit_config(self, runner: SimRunner) -> str:
        def b64json(value: object) -> str:
            return base64.b64encode(json.dumps(value).encode()).decode()

        files = {
            ".runner": b64json(
                {
                    "agentId": str(runner.id),
                    "agentName": runner.name,
                    "poolId": str(runner.group_id),
                    "poolName": self.group_ids[runner.group_id],
                    "serverUrl": self.broker_url,
                    "gitHubUrl": f"https://github.com/{runner.scope.removeprefix('org:')}",
                    "workFolder": "_work",
                    "ephemeral": "true",
                    "useV2Flow": "true",
                }
            ),
            ".credentials": b64json(
                {
                    "scheme": "OAuth",
                    "data": {
                        "clientId": f"sim-{runner.id}",
                        "authorizationUrl": f"{self.broker_url}/oauth2/token",
                        "requireFipsCryptography": "False",
                    },
                }
            ),
            ".credentials_rsaparams": b64json({"d": runner.secret, "exponent": "AQAB"}),
        }
        return b64json(files)

    def delete_runner(self, scope: str, runner_id: int) -> None:
        runner = self.runners.get(runner_id)
        if runner is None or runner.scope != scope:
            raise Missing("Not Found")
        if runner.busy:
            raise Busy(f"Runner {runner.name} is still running a job")
        del self.runners[runner_id]
        self.save()

    def runners_in(self, scope: str) -> list[SimRunner]:
        self.sweep_lost()
        return sorted(
            (runner for runner in self.runners.values() if runner.scope == scope),
            key=lambda runner: runner.id,
        )

    # --- runners (broker side: what the runner process talks to) ---------------------------

    def authenticate(self, runner_id: int, secret: str) -> SimRunner:
        runner = self.runners.get(runner_id)
        if runner is None or not secrets.compare_digest(runner.secret, secret):
            raise Missing("unknown runner or bad credentials")
        runner.last_seen = self.clock()
        return runner

    def connect(self, runner: SimRunner) -> None:
        runner.status = "online"
        self.save()

    def next_job(self, runner: SimRunner) -> SimJob | None:
        """Give the runner the oldest queued job whose labels it all has."""
        if runner.job_id is not None:
            job = self.jobs[runner.job_id]
            return job if job.status != "completed" else None
        if runner.ran_job:
            return None
        have = {label.lower() for label in runner.labels}
        repo_ok = (
            (lambda job: True)
            if runner.scope.startswith("org:")
            else (lambda job: job.repository == runner.scope.lower())
        )
        for job in sorted(self.jobs.values(), key=lambda j: j.created_at):
            if job.status != "queued" or not repo_ok(job):
                continue
            if {label.lower() for label in job.labels} <= have:
                now = self.clock()
                job.status, job.started_at = "in_progress", now
                job.runner_id, job.runner_name = runner.id, runner.name
                runner.busy, runner.job_id, runner.ran_job = True, job.id, True
                self._refresh_run(self.runs[job.run_id])
                self._emit("in_progress", job)
                return job
        return None

    def complete(self, runner: SimRunner, job_id: int, conclusion: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.runner_id != runner.id:
            raise Missing(f"job {job_id} is not assigned to runner {runner.name}")
        self._finish(job, conclusion)
        runner.busy, runner.job_id = False, None
        # An ephemeral runner is removed by the service once its job is done.
        self.runners.pop(runner.id, None)
        self.save()

    def disconnect(self, runner: SimRunner) -> None:
        runner.status = "offline"
        self.save()

    def _finish(self, job: SimJob, conclusion: str) -> None:
        if job.status == "completed":
            return
        job.status, job.conclusion, job.completed_at = "completed", conclusion, self.clock()
        self._refresh_run(self.runs[job.run_id])
        self._emit("completed", job)

    def sweep_lost(self) -> None:
        """Runners silent for too long go offline; a busy one's job fails, as on GitHub."""
        now = self.clock()
        for runner in list(self.runners.values()):
            if runner.status == "online" and now - runner.last_seen > LOST_AFTER_SECONDS:
                runner.status = "offline"
                if runner.job_id is not None:
                    self._finish(self.jobs[runner.job_id], "failure")
                    runner.busy, runner.job_id = False, None
