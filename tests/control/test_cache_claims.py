"""A VM token's claim comes from the job the loop linked to the VM and that job's run at
GitHub: it waits for the link, refuses a VM that is gone, says so when GitHub cannot be read,
and reads each run and default branch once."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from blacksmith_mini.cache import tokens
from blacksmith_mini.control.cache_claims import JobClaims
from blacksmith_mini.domain import model
from blacksmith_mini.github import errors

pytestmark = pytest.mark.anyio
VM = model.Vm(
    vm_id=4,
    name="bm-default-4",
    pool="default",
    scope="acme/app",
    labels=("self-hosted",),
    vcpus=2,
    memory_mib=1024,
    state=model.VmState.BUSY,
    state_since=0.0,
    created_at=0.0,
)
JOB = model.Job(
    id=77,
    run_id=9,
    repository="acme/app",
    labels=("self-hosted",),
    status=model.JobStatus.IN_PROGRESS,
    created_at=0.0,
)


class Store:
    def __init__(self, vm: model.Vm | None) -> None:
        self.vms = {vm.vm_id: vm} if vm else {}

    async def vm(self, vm_id: int) -> model.Vm | None:
        return self.vms.get(vm_id)

    async def job(self, job_id: int) -> model.Job | None:
        return JOB if job_id == JOB.id else None


class GitHub:
    def __init__(self, run: dict[str, Any], *, broken: bool = False) -> None:
        self.run, self.broken, self.calls = run, broken, []  # type: ignore[var-annotated]

    async def get(self, path: str) -> dict[str, Any]:
        self.calls.append(path)
        if self.broken:
            raise errors.GitHubError("GitHub answered 502")
        if path == "/repos/acme/app":
            return {"full_name": "acme/app", "default_branch": "trunk"}
        return self.run


PULL_RUN = {
    "event": "pull_request",
    "head_branch": "feat",
    "repository": {"full_name": "acme/app"},
    "head_repository": {"full_name": "acme/app"},
    "pull_requests": [{"number": 12, "base": {"ref": "trunk"}}],
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def claims(store: Store, github: GitHub, clock: Clock) -> JobClaims:
    return JobClaims(
        store=store, github=github, ttl_seconds=60, wait_seconds=5, clock=clock, sleep=clock.sleep
    )


async def test_a_pull_requests_vm_gets_its_pull_scope_and_reads_base_then_default() -> None:
    clock, github = Clock(), GitHub(PULL_RUN)
    found = await claims(Store(dataclasses.replace(VM, job_id=77)), github, clock).claim("4")
    assert found.repository == "acme/app"
    assert found.write == "refs/pull/12/merge"
    assert found.reads == ("refs/pull/12/merge", "refs/heads/trunk")
    assert found.vm_id == "4" and found.expires_at == 1060


async def test_it_waits_for_the_link_then_refuses_by_name() -> None:
    clock = Clock()
    store = Store(VM)
    resolver = claims(store, GitHub(PULL_RUN), clock)
    with pytest.raises(tokens.TokenError, match="no job linked after 5s"):
        await resolver.claim("4")
    assert clock.now >= 1005

    async def link_then_sleep(seconds: float) -> None:
        store.vms[4] = dataclasses.replace(VM, job_id=77)
        clock.now += seconds

    resolver.sleep = link_then_sleep
    assert (await resolver.claim("4")).write == "refs/pull/12/merge"


async def test_a_gone_vm_and_a_foreign_token_are_refused() -> None:
    clock = Clock()
    gone = dataclasses.replace(VM, state=model.VmState.GONE, job_id=77)
    with pytest.raises(tokens.TokenError, match="not running"):
        await claims(Store(gone), GitHub(PULL_RUN), clock).claim("4")
    with pytest.raises(tokens.TokenError, match="not a VM token"):
        await claims(Store(VM), GitHub(PULL_RUN), clock).claim("vm-4")


async def test_github_unreadable_is_a_refusal_that_says_so_and_is_not_remembered() -> None:
    clock, github = Clock(), GitHub(PULL_RUN, broken=True)
    resolver = claims(Store(dataclasses.replace(VM, job_id=77)), github, clock)
    with pytest.raises(tokens.TokenError, match="cannot read the job's run from GitHub"):
        await resolver.claim("4")
    github.broken = False
    assert (await resolver.claim("4")).repository == "acme/app"
    await resolver.claim("4")
    assert github.calls.count("/repos/acme/app/actions/runs/9") == 1
