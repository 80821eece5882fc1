"""In-memory GitHub port and VM driver for driving the loop one tick at a time.

``FakeGitHub`` keeps jobs and runners like GitHub does, including the unkind parts the loop
must survive: a registration can be made to fail, a repository can be made to answer 404, and
``delete_runner`` refuses (422) only when it *thinks* the runner is busy. ``FakeDriver`` holds
VMs whose facts the test sets. ``world()`` builds a ``Reconciler`` on a SQLite store with a
hand-driven clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from blacksmith_mini.control import reconciler
from blacksmith_mini.domain import labels, model
from blacksmith_mini.github import client, errors, transport
from blacksmith_mini.store import engine, repository
from blacksmith_mini.vm import driver as vm_driver


class Clock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeGitHub:
    def __init__(self) -> None:
        self.rate = transport.RateState()
        self.moved: dict[str, str] = {}
        self.jobs: dict[str, list[model.Job]] = {}
        self.runners_by_scope: dict[str, list[model.RunnerInfo]] = {}
        self.registered: list[str] = []
        self.deleted: list[int] = []
        self.register_error: errors.GitHubError | None = None
        self.broken: dict[str, errors.GitHubError] = {}
        self.busy_at_github: set[int] = set()
        self.on_delete: Callable[[int], None] | None = None
        self.public: set[str] = set()  # repositories that are public (organization scope)
        self._ids = itertools.count(100)
        self.reruns: list[tuple[str, int]] = []  # rerun_job calls, in order
        self.rerun_errors: list[errors.GitHubError] = []  # raised by the next rerun_job calls
        self.on_rerun: Callable[[str, int], None] | None = None

    async def open_jobs(self, repository: str) -> list[model.Job]:
        if repository in self.broken:
            raise self.broken[repository]
        return list(self.jobs.get(repository, []))

    async def job(self, repository: str, job_id: int) -> model.Job | None:
        return next((j for j in self.jobs.get(repository, []) if j.id == job_id), None)

    async def rerun_job(self, repository: str, job_id: int) -> None:
        self.reruns.append((repository, job_id))
        if self.on_rerun is not None:
            self.on_rerun(repository, job_id)
        if self.rerun_errors:
            raise self.rerun_errors.pop(0)

    async def runners(self, scope: str, *, prefix: str) -> list[model.RunnerInfo]:
        return [r for r in self.runners_by_scope.get(scope, []) if r.name.startswith(prefix)]

    async def runner_by_name(self, scope: str, name: str) -> model.RunnerInfo | None:
        return next((r for r in self.runners_by_scope.get(scope, []) if r.name == name), None)

    async def register_runner(
        self, scope: str, *, name: str, labels: Sequence[str], runner_group_id: int
    ) -> client.Registration:
        self.registered.append(name)
        if self.register_error is not None:
            raise self.register_error
        runner_id = next(self._ids)
        self.runners_by_scope.setdefault(scope, []).append(
            model.RunnerInfo(id=runner_id, name=name, scope=scope, status="offline", busy=False)
        )
        return client.Registration(runner_id=runner_id, encoded_jit_config="jit")

    async def delete_runner(self, scope: str, runner_id: int) -> bool:
        if runner_id in self.busy_at_github:
            raise errors.RunnerBusy("422: still running a job")
        if self.on_delete is not None:
            self.on_delete(runner_id)
        self.deleted.append(runner_id)
        before = self.runners_by_scope.get(scope, [])
        self.runners_by_scope[scope] = [r for r in before if r.id != runner_id]
        return len(before) != len(self.runners_by_scope[scope])

    async def runner_group_id(self, organization: str, name: str) -> int:
        return 1

    async def runner_group(self, organization: str, name: str) -> client.RunnerGroup:
        return client.RunnerGroup(
            id=1,
            name=name,
            visibility="all",
            allows_public_repositories=False,
            selected_repositories=None,
        )

    async def organization_repositories(self, organization: str) -> list[str]:
        return sorted(self.jobs)

    async def organization_repository_visibility(self, organization: str) -> dict[str, bool]:
        return {name: name not in self.public for name in self.jobs}

    async def close(self) -> None:
        return None


class FakeDriver:
    name = "fake"

    def __init__(self) -> None:
        self.vms: dict[int, vm_driver.VmObservation] = {}
        self.started: list[int] = []
        self.stopped: list[tuple[int, bool]] = []
        self.preflight_error: str | None = None
        self.start_error: str | None = None
        self.on_observe: Callable[[], None] | None = None

    async def open(self) -> None:
        return None

    async def preflight(self, spec: vm_driver.VmSpec) -> None:
        if self.preflight_error:
            raise vm_driver.VmStartError(self.preflight_error)

    async def start(self, spec: vm_driver.VmSpec) -> vm_driver.VmObservation:
        if self.start_error:
            raise vm_driver.VmStartError(self.start_error)
        self.started.append(spec.vm_id)
        seen = vm_driver.VmObservation(
            vm_id=spec.vm_id, name=spec.name, alive=True, started_at=0.0, pid=4000 + spec.vm_id
        )
        self.vms[spec.vm_id] = seen
        return seen

    def set(self, vm_id: int, **facts: Any) -> None:
        self.vms[vm_id] = dataclasses.replace(self.vms[vm_id], **facts)

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        self.stopped.append((vm_id, force))
        if vm_id in self.vms:
            self.set(vm_id, alive=False, exit_code=0)

    async def observe(self) -> Mapping[int, vm_driver.VmObservation]:
        if self.on_observe is not None:
            self.on_observe()
        return dict(self.vms)

    async def release(self, vm_id: int) -> None:
        self.vms.pop(vm_id, None)

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        return []

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        return ""

    def on_change(self, callback: Callable[[], None]) -> None:
        return None

    async def close(self) -> None:
        return None


POOL = model.Pool(name="default", labels=labels.normalize(["self-hosted", "linux", "x64"]))


def queued(job_id: int, *, repository: str = "acme/app", at: float = 0.0) -> model.Job:
    return model.Job(
        id=job_id,
        run_id=job_id * 10,
        repository=repository,
        labels=("self-hosted", "linux", "x64"),
        status=model.JobStatus.QUEUED,
        created_at=at,
    )


@dataclasses.dataclass
class World:
    loop: reconciler.Reconciler
    github: FakeGitHub
    driver: FakeDriver
    store: repository.Store
    clock: Clock

    async def tick(self, *, poll: bool = True, advance: float = 1.0) -> None:
        """One tick, after a GitHub poll (as the observer task would have made)."""
        if poll:
            await self.loop.observer.refresh()
        await self.loop.tick()
        self.loop.publish(self.clock.now)
        self.clock.advance(advance)

    def active(self) -> list[model.Vm]:
        return list(self.loop.state.vms.values())


async def world(
    tmp_path: pathlib.Path, *, repositories: Sequence[str] = ("acme/app",), **policy: Any
) -> World:
    store = repository.Store(engine.sqlite_url(tmp_path))
    await store.open()
    clock = Clock()
    github = FakeGitHub()
    fake_driver = FakeDriver()
    settings: dict[str, Any] = {"max_vms": 5, "pools": (POOL,), "scopes": tuple(repositories)}
    settings.update(policy)
    loop = reconciler.Reconciler(
        policy=model.Policy(**settings),
        store=store,
        github=github,
        driver=fake_driver,
        config=reconciler.LoopConfig(github_poll_interval=3600.0),
        clock=clock,
    )
    await loop.start(background=False)  # the test polls and ticks by hand
    return World(loop=loop, github=github, driver=fake_driver, store=store, clock=clock)
