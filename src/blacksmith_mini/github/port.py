"""The GitHub port: what the control loop calls. ``client.GitHubClient`` implements it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from blacksmith_mini.domain import model
from blacksmith_mini.github import client, transport


class GitHubPort(Protocol):
    @property
    def rate(self) -> transport.RateState: ...

    @property
    def moved(self) -> Mapping[str, str]:
        """Configured ``owner/repo`` -> its new full name, for repositories GitHub answered
        301 for (renamed or transferred)."""
        ...

    async def open_jobs(self, repository: str) -> list[model.Job]: ...

    async def job(self, repository: str, job_id: int) -> model.Job | None: ...

    async def rerun_job(self, repository: str, job_id: int) -> None:
        """Re-run a job in a new attempt of its run; ``errors.RerunRefused`` when GitHub will
        not (run still in progress, past the 30-day window, unknown job); needs Actions: write."""
        ...

    async def runners(self, scope: str, *, prefix: str) -> list[model.RunnerInfo]: ...

    async def runner_by_name(self, scope: str, name: str) -> model.RunnerInfo | None: ...

    async def register_runner(
        self, scope: str, *, name: str, labels: Sequence[str], runner_group_id: int
    ) -> client.Registration: ...

    async def delete_runner(self, scope: str, runner_id: int) -> bool: ...

    async def runner_group_id(self, organization: str, name: str) -> int: ...

    async def runner_group(self, organization: str, name: str) -> client.RunnerGroup: ...

    async def organization_repositories(self, organization: str) -> list[str]: ...

    async def organization_repository_visibility(self, organization: str) -> dict[str, bool]: ...

    async def close(self) -> None: ...
