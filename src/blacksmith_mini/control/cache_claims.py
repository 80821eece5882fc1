"""What a VM's cache token allows, resolved when the VM first calls: the repository and scopes
of the job the control plane linked to that VM, read from GitHub (never from the VM).

A VM gets its token at boot, before any job is assigned (runners take whatever job GitHub
gives them), so the token names only the VM. On its first cache call this resolver waits
(up to ``wait_seconds``) for the loop to link the VM's job, reads the job's workflow run and
its repository's default branch from GitHub (each once, then remembered), and derives the
scopes with ``cache.runscope``. A VM runs one job, so its claim is remembered for its life.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from blacksmith_mini.cache import runscope, tokens
from blacksmith_mini.domain import model
from blacksmith_mini.github import errors

REMEMBERED = 4096
POLL_SECONDS = 0.25


class ClaimStore(Protocol):
    async def vm(self, vm_id: int) -> model.Vm | None: ...
    async def job(self, job_id: int) -> model.Job | None: ...


class GitHubReader(Protocol):
    async def get(self, path: str) -> dict[str, Any]: ...


class JobClaims:
    def __init__(
        self,
        *,
        store: ClaimStore,
        github: GitHubReader,
        ttl_seconds: int,
        wait_seconds: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store, self.github = store, github
        self.ttl_seconds, self.wait_seconds = ttl_seconds, wait_seconds
        self.clock, self.sleep = clock, sleep
        self._claims: collections.OrderedDict[str, tokens.Claim] = collections.OrderedDict()
        self._runs: collections.OrderedDict[tuple[str, int], runscope.RunFacts] = (
            collections.OrderedDict()
        )
        self._default_branches: dict[str, str] = {}

    async def claim(self, vm_id: str) -> tokens.Claim:
        """The claim of VM ``vm_id``'s job; ``tokens.TokenError`` saying why there is none."""
        known = self._claims.get(vm_id)
        if known is not None:
            return known
        job = await self._linked_job(vm_id)
        try:
            facts = await self._run_facts(job.repository, job.run_id)
        except (errors.GitHubError, runscope.RunFactsError) as error:
            raise tokens.TokenError(f"cannot read the job's run from GitHub: {error}") from None
        scopes = runscope.run_scopes(facts)
        claim = tokens.Claim(
            repository=job.repository,
            write=scopes.write,
            reads=scopes.reads,
            expires_at=int(self.clock()) + self.ttl_seconds,
            vm_id=vm_id,
        )
        _remember(self._claims, vm_id, claim)
        return claim

    async def _linked_job(self, vm_id: str) -> model.Job:
        if not vm_id.isdigit():
            raise tokens.TokenError("not a VM token of this control plane")
        deadline = self.clock() + self.wait_seconds
        while True:
            vm = await self.store.vm(int(vm_id))
            if vm is None or not vm.is_active:
                raise tokens.TokenError(f"VM {vm_id} is not running: its cache token is void")
            if vm.job_id is not None:
                job = await self.store.job(vm.job_id)
                if job is not None:
                    return job
            if self.clock() >= deadline:
                raise tokens.TokenError(
                    f"VM {vm_id} has no job linked after {self.wait_seconds:.0f}s; "
                    "the guest goes on to GitHub's cache"
                )
            await self.sleep(POLL_SECONDS)

    async def _run_facts(self, repository: str, run_id: int) -> runscope.RunFacts:
        found = self._runs.get((repository, run_id))
        if found is not None:
            return found
        default_branch = self._default_branches.get(repository)
        if default_branch is None:
            about = await self.github.get(f"/repos/{repository}")
            default_branch = str(about.get("default_branch") or "")
            if not default_branch:
                raise runscope.RunFactsError(f"GitHub named no default branch for {repository}")
            self._default_branches[repository] = default_branch
        payload = await self.github.get(f"/repos/{repository}/actions/runs/{run_id}")
        facts = runscope.run_facts(payload, default_branch=default_branch)
        _remember(self._runs, (repository, run_id), facts)
        return facts


def _remember(table: collections.OrderedDict[Any, Any], key: Any, value: Any) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > REMEMBERED:
        table.popitem(last=False)
