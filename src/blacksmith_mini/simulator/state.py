"""The simulated GitHub's state: runs, jobs, runners, repositories, runner groups, and the rules
GitHub applies to them.

Synchronous and in memory; the REST and broker routes are thin wrappers. Rules kept from the
real service (``../shared/reference/github.md``, ``field.md``): a JIT runner takes any queued
job whose labels it all has (case-insensitive), from its repository or, at organization scope,
from any repository its runner group serves; it takes one job and is then removed. A taken job
is first *assigned* (queued, with a runner) for ``assign_seconds``; a runner that vanishes
before the job starts sends the job back to the queue. A duplicate runner name is a 409;
deleting a busy runner is a 422 — judged on ``busy`` as REST shows it, which lags by
``lag_seconds``, so a runner that just took a job can be deleted (its job then fails and
``killed_busy_runners`` counts it). A runner that stops talking goes offline and its started
job fails. Repositories can be renamed (old names redirect), removed or forbidden.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from blacksmith_mini.simulator.lag import Lagged
from blacksmith_mini.simulator.objects import (
    Busy,
    Change,
    Conflict,
    JobSpec,
    Missing,
    SimGroup,
    SimJob,
    SimRepository,
    SimRun,
    SimRunner,
    encode_jit_config,
)
from blacksmith_mini.simulator.sim_repos import RepositoryRules

__all__ = ["Busy", "Change", "Conflict", "JobSpec", "Missing", "SimGroup", "SimJob"]
__all__ += ["SimRepository", "SimRun", "SimRunner", "SimState"]
LOST_AFTER_SECONDS = 15.0
KEEP_COMPLETED_SECONDS = 3600.0
REPO_OWNER_ID = 9919
HELD_RUN_STATUSES = frozenset({"requested", "waiting", "pending"})


class SimState(RepositoryRules):
    def __init__(
        self,
        *,
        repositories: Sequence[str],
        broker_url: str = "http://127.0.0.1:8000/_sim/broker",
        clock: Callable[[], float] = time.time,
        lag_seconds: float = 0.0,
        assign_seconds: float = 0.5,
    ) -> None:
        self.broker_url = broker_url
        self.clock = clock
        self.assign_seconds = assign_seconds
        self.lagged = Lagged(clock, seconds=lag_seconds)
        self.runs: dict[int, SimRun] = {}
        self.jobs: dict[int, SimJob] = {}
        self.runners: dict[int, SimRunner] = {}
        self.next_ids = {"run": 7_000_000_001, "job": 20_000_000_001, "runner": 101, "number": 1}
        self.listeners: list[Callable[[Change], None]] = []
        self.repos: dict[int, SimRepository] = {}
        self.former_names: dict[str, int] = {}  # old full name -> repository id (redirects)
        self.groups = {1: SimGroup(id=1, name="Default")}
        self.counters = {"killed_busy_runners": 0, "requeued_jobs": 0}
        self.path: pathlib.Path | None = None
        for name in repositories:
            self.add_repository(name)

    @property
    def lag_seconds(self) -> float:
        return self.lagged.seconds

    @lag_seconds.setter
    def lag_seconds(self, value: float) -> None:
        self.lagged.seconds = max(0.0, float(value))

    @property
    def killed_busy_runners(self) -> int:
        return self.counters["killed_busy_runners"]

    # --- persistence: GitHub outlives our process, so the simulated one does too ---------

    def attach(self, path: pathlib.Path) -> None:
        """Load the state saved at ``path`` (if any) and save every change there."""
        self.path = path
        if not path.exists():
            return
        saved = json.loads(path.read_text())
        self.runs = {int(k): SimRun(**v) for k, v in saved["runs"].items()}
        self.jobs = {int(k): SimJob(**v) for k, v in saved["jobs"].items()}
        self.runners = {int(k): SimRunner(**v) for k, v in saved["runners"].items()}
        configured = self.repositories
        if "repos" in saved:
            self.repos = {int(k): SimRepository(**v) for k, v in saved["repos"].items()}
            self.groups = {int(k): SimGroup(**v) for k, v in saved["groups"].items()}
            self.former_names = dict(saved["former_names"])
            self.counters |= saved.get("counters", {})
        for name in configured:
            if self.repository(name) is None and name not in self.former_names:
                self.add_repository(name)
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

        def dump(items: dict[int, Any]) -> dict[int, Any]:
            return {k: dataclasses.asdict(v) for k, v in items.items()}

        state = {
            "runs": dump(self.runs),
            "jobs": dump(self.jobs),
            "runners": dump(self.runners),
            "repos": dump(self.repos),
            "groups": dump(self.groups),
            "former_names": self.former_names,
            "counters": self.counters,
            "next": self.next_ids,
        }
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.path)

    def _take(self, kind: str) -> int:
        value = self.next_ids.setdefault(kind, 1)
        self.next_ids[kind] = value + 1
        return value

    def _emit(self, action: str, job: SimJob) -> None:
        self.save()
        for listener in list(self.listeners):
            listener(Change(kind="workflow_job", action=action, job_id=job.id))

    def _touch(self, *items: SimJob | SimRun | SimRunner) -> None:
        for item in items:
            kind = {SimJob: "job", SimRun: "run", SimRunner: "runner"}[type(item)]
            self.lagged.record(kind, item)

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
        run_status: str = "queued",
    ) -> SimJob:
        """Queue a run with one job."""
        spec = JobSpec(list(labels), duration, conclusion, name)
        run = self.queue_run(
            repository=repository, jobs=[spec], workflow_name=workflow_name, run_status=run_status
        )
        return self.jobs[run.job_ids[0]]

    def queue_run(
        self,
        *,
        repository: str,
        jobs: Sequence[JobSpec | tuple[Sequence[str], float, str, str]],
        workflow_name: str = "CI",
        run_status: str = "queued",
    ) -> SimRun:
        """Queue a run of several jobs (each ``(labels, duration, conclusion, name)``); with
        ``run_status`` requested/waiting/pending the run shows that status until a job starts."""
        if run_status != "queued" and run_status not in HELD_RUN_STATUSES:
            raise ValueError("run_status must be queued, requested, waiting or pending")
        if not jobs:
            raise ValueError("a run needs at least one job")
        repo = self._named(repository)
        now = self.clock()
        run = SimRun(
            id=self._take("run"),
            repository=repo.full_name,
            name=workflow_name,
            created_at=now,
            updated_at=now,
            run_number=self._take("number"),
            held_status=None if run_status == "queued" else run_status,
        )
        self.runs[run.id] = run
        created = []
        for labels, duration, conclusion, name in (JobSpec(*spec) for spec in jobs):
            job = SimJob(
                id=self._take("job"),
                run_id=run.id,
                repository=repo.full_name,
                labels=list(labels),
                duration=float(duration),
                planned_conclusion=conclusion,
                name=name,
                workflow_name=workflow_name,
                created_at=now,
            )
            run.job_ids.append(job.id)
            self.jobs[job.id] = job
            created.append(job)
        self._refresh_run(run)
        for job in created:
            self._touch(job)
            self._emit("queued", job)
        return run

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
            run.status = run.held_status or "queued"
        self._touch(run)

    # --- runners (REST side) ---------------------------------------------------------------

    def register(
        self, *, scope: str, name: str, labels: Sequence[str], group_id: int
    ) -> tuple[SimRunner, str]:
        if any(runner.name == name and runner.scope == scope for runner in self.runners.values()):
            raise Conflict(f"A runner with the name {name} already exists.")
        if group_id not in self.groups:
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
        self._touch(runner)
        self.save()
        return runner, encode_jit_config(
            runner, pool_name=self.groups[group_id].name, broker_url=self.broker_url
        )

    def delete_runner(self, scope: str, runner_id: int) -> None:
        """DELETE as GitHub judges it: on the lagged ``busy``. A runner that took a job since
        is removed all the same: an assigned job goes back to the queue, a started one fails."""
        runner = self.runners.get(runner_id)
        if runner is None or runner.scope != scope:
            raise Missing("Not Found")
        if self.lagged.view("runner", runner).busy:
            raise Busy(f"Runner {runner.name} is still running a job")
        del self.runners[runner_id]
        self.lagged.forget("runner", runner_id)
        self._release(runner, "deleted")
        self.save()

    def runners_in(self, scope: str) -> list[SimRunner]:
        self.sweep_lost()
        return sorted(
            (runner for runner in self.runners.values() if runner.scope == scope),
            key=lambda runner: runner.id,
        )

    # --- REST views: what GitHub's API shows, ``lag_seconds`` late -------------------------

    def rest_job(self, job: SimJob) -> SimJob:
        return self.lagged.view("job", job)

    def rest_run(self, run: SimRun) -> SimRun:
        return self.lagged.view("run", run)

    def rest_runner(self, runner: SimRunner) -> SimRunner:
        return self.lagged.view("runner", runner)

    # --- runners (broker side: what the runner process talks to) ---------------------------

    def authenticate(self, runner_id: int, secret: str) -> SimRunner:
        runner = self.runners.get(runner_id)
        if runner is None or not secrets.compare_digest(runner.secret, secret):
            raise Missing("unknown runner or bad credentials")
        runner.last_seen = self.clock()
        return runner

    def connect(self, runner: SimRunner) -> None:
        runner.status, runner.last_seen = "online", self.clock()
        self._touch(runner)
        self.save()

    def may_take(self, runner: SimRunner, job: SimJob) -> bool:
        """GitHub hands ``job`` to ``runner`` only from a repository the runner serves."""
        if not runner.scope.startswith("org:"):
            return job.repository == runner.scope.lower()
        if not job.repository.startswith(runner.scope[4:].lower() + "/"):
            return False
        repo, group = self.repository(job.repository), self.groups.get(runner.group_id)
        return repo is not None and group is not None and group.serves(repo)

    def next_job(self, runner: SimRunner) -> SimJob | None:
        """The runner's job once it has started; assigns the oldest queued job it may take
        (labels all carried, repository served) and starts it after ``assign_seconds``."""
        if runner.job_id is None and not runner.ran_job:
            have = {label.lower() for label in runner.labels}
            for job in sorted(self.jobs.values(), key=lambda j: (j.created_at, j.id)):
                if job.status != "queued" or job.runner_id is not None:
                    continue
                if {label.lower() for label in job.labels} <= have and self.may_take(runner, job):
                    job.runner_id, job.runner_name = runner.id, runner.name
                    job.runner_group_id, job.assigned_at = runner.group_id, self.clock()
                    runner.busy, runner.job_id, runner.ran_job = True, job.id, True
                    self._touch(job, runner)
                    self.save()
                    break
        if runner.job_id is None:
            return None
        job = self.jobs[runner.job_id]
        if job.status == "queued":
            if self.clock() - (job.assigned_at or 0.0) < self.assign_seconds:
                return None
            job.status, job.started_at = "in_progress", self.clock()
            self._touch(job)
            self._refresh_run(self.runs[job.run_id])
            self._emit("in_progress", job)
        return job if job.status != "completed" else None

    def complete(self, runner: SimRunner, job_id: int, conclusion: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.runner_id != runner.id:
            raise Missing(f"job {job_id} is not assigned to runner {runner.name}")
        self._finish(job, conclusion)
        runner.busy, runner.job_id = False, None
        # An ephemeral runner is removed by the service once its job is done.
        self.runners.pop(runner.id, None)
        self.lagged.forget("runner", runner.id)
        self.save()

    def disconnect(self, runner: SimRunner) -> None:
        runner.status = "offline"
        self._touch(runner)
        self.save()

    def _finish(self, job: SimJob, conclusion: str) -> None:
        if job.status == "completed":
            return
        job.status, job.conclusion, job.completed_at = "completed", conclusion, self.clock()
        job.assigned_at = None
        self._touch(job)
        self._refresh_run(self.runs[job.run_id])
        self._emit("completed", job)

    def _release(self, runner: SimRunner, why: str) -> None:
        """The runner is gone (deleted or lost): its assigned job is queued again, as GitHub
        does ("not acquired"), and its started job fails."""
        job = self.jobs.get(runner.job_id) if runner.job_id is not None else None
        runner.busy, runner.job_id = False, None
        self._touch(runner)
        if job is None or job.status == "completed":
            return
        if job.status == "in_progress":
            if why == "deleted":
                self.counters["killed_busy_runners"] += 1
            self._finish(job, "failure")
            return
        job.runner_id = job.runner_name = job.runner_group_id = job.assigned_at = None
        self.counters["requeued_jobs"] += 1
        self._touch(job)
        self._refresh_run(self.runs[job.run_id])
        self._emit("queued", job)

    def sweep_lost(self) -> None:
        """Runners silent for too long go offline; their jobs are re-queued or fail."""
        now = self.clock()
        for runner in list(self.runners.values()):
            if runner.status == "online" and now - runner.last_seen > LOST_AFTER_SECONDS:
                runner.status = "offline"
                self._release(runner, "lost")
