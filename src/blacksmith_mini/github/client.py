"""The GitHub REST client the control loop uses, through gidgethub over httpx2.

Every request carries GitHub's documented headers; GETs use gidgethub's ETag cache so an
unchanged answer comes back as a 304 that does not count against the primary rate limit.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import gidgethub
import httpx2
from gidgethub import httpx as gh_httpx

from blacksmith_mini.domain import model
from blacksmith_mini.github import auth, errors, parse, transport

log = logging.getLogger(__name__)
API_VERSION = "2022-11-28"
OPEN_RUN_STATUSES = ("queued", "in_progress")


def scope_path(scope: str) -> str:
    """``owner/repo`` -> ``/repos/owner/repo``; ``org:NAME`` -> ``/orgs/NAME``."""
    if scope.startswith("org:"):
        return f"/orgs/{scope[4:]}"
    return f"/repos/{scope}"


class BoundedCache(collections.OrderedDict[str, Any]):
    """The ETag cache gidgethub keeps per URL, evicting the least recently used entry."""

    def __init__(self, *, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Registration:
    runner_id: int
    encoded_jit_config: str = dataclasses.field(repr=False)


class GitHubClient:
    """Calls we make to GitHub. Raises only ``errors.GitHubError`` subclasses."""

    def __init__(
        self,
        *,
        token: str | auth.TokenSource,
        api_url: str,
        inner_transport: httpx2.AsyncBaseTransport | None = None,
        mutation_spacing: float = 1.0,
        timeout: float = 15.0,
    ) -> None:
        self.guard = transport.GuardedTransport(
            inner_transport or httpx2.AsyncHTTPTransport(retries=0),
            mutation_spacing=mutation_spacing,
            timeout=timeout,
        )
        self._http = httpx2.AsyncClient(transport=self.guard, timeout=timeout)
        self.tokens: auth.TokenSource = auth.StaticToken(token) if isinstance(token, str) else token
        self._gh = gh_httpx.GitHubAPI(
            self._http,
            "blacksmith-mini",
            cache=BoundedCache(maxsize=2048),
            base_url=api_url.rstrip("/"),
        )
        self._headers = {"X-GitHub-Api-Version": API_VERSION}

    @property
    def rate(self) -> transport.RateState:
        return self.guard.state

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        """One call; after a 401 the token is refreshed and the call made once more."""
        try:
            return await self._call_once(method, url, **kwargs)
        except errors.BadCredentials:
            self.tokens.invalidate()
            return await self._call_once(method, url, **kwargs)

    async def _call_once(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            function = getattr(self._gh, method)
            token = await self.tokens.token()
            return await function(url, extra_headers=self._headers, oauth_token=token, **kwargs)
        except errors.GitHubError:
            raise
        except gidgethub.RateLimitExceeded as exc:
            raise errors.RateLimited(self.guard.state.blocked_until or 0.0, str(exc)) from exc
        except gidgethub.GitHubBroken as exc:
            raise errors.GitHubUnavailable(f"GitHub error on {url}: {exc}") from exc
        except gidgethub.BadRequest as exc:
            raise _classify(exc, url, method=method) from exc
        except httpx2.HTTPError as exc:
            raise errors.GitHubUnavailable(f"GitHub unreachable on {url}: {exc}") from exc

    async def _iterate(self, url: str, key: str) -> list[dict[str, Any]]:
        try:
            return await self._iterate_once(url, key)
        except errors.BadCredentials:
            self.tokens.invalidate()
            return await self._iterate_once(url, key)

    async def _iterate_once(self, url: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        try:
            token = await self.tokens.token()
            async for item in self._gh.getiter(
                url, extra_headers=self._headers, iterable_key=key, oauth_token=token
            ):
                items.append(item)
        except errors.GitHubError:
            raise
        except gidgethub.RateLimitExceeded as exc:
            raise errors.RateLimited(self.guard.state.blocked_until or 0.0, str(exc)) from exc
        except gidgethub.GitHubBroken as exc:
            raise errors.GitHubUnavailable(f"GitHub error on {url}: {exc}") from exc
        except gidgethub.BadRequest as exc:
            raise _classify(exc, url, method="getiter") from exc
        except httpx2.HTTPError as exc:
            raise errors.GitHubUnavailable(f"GitHub unreachable on {url}: {exc}") from exc
        return items

    # --- jobs ------------------------------------------------------------------------------

    async def open_jobs(self, repository: str) -> list[model.Job]:
        """Jobs of the repository's queued and in-progress runs (a run turns in_progress as
        soon as one of its jobs starts, so both are needed to find every queued job)."""
        run_ids: list[int] = []
        for status in OPEN_RUN_STATUSES:
            runs = await self._iterate(
                f"/repos/{repository}/actions/runs?status={status}&per_page=100", "workflow_runs"
            )
            run_ids.extend(int(run["id"]) for run in runs)
        jobs: list[model.Job] = []
        for run_id in dict.fromkeys(run_ids):
            raw = await self._iterate(
                f"/repos/{repository}/actions/runs/{run_id}/jobs?per_page=100", "jobs"
            )
            jobs.extend(_jobs(raw, repository))
        return jobs

    async def job(self, repository: str, job_id: int) -> model.Job | None:
        raw = await self._call("getitem", f"/repos/{repository}/actions/jobs/{job_id}")
        return parse.WorkflowJob.model_validate(raw).to_domain(repository)

    # --- runners ---------------------------------------------------------------------------

    async def runners(self, scope: str, *, prefix: str) -> list[model.RunnerInfo]:
        raw = await self._iterate(f"{scope_path(scope)}/actions/runners?per_page=100", "runners")
        found = (parse.Runner.model_validate(item) for item in raw)
        return [r.to_domain(scope) for r in found if r.name.startswith(f"{prefix}-")]

    async def runner_by_name(self, scope: str, name: str) -> model.RunnerInfo | None:
        raw = await self._iterate(
            f"{scope_path(scope)}/actions/runners?name={name}&per_page=100", "runners"
        )
        for item in raw:
            runner = parse.Runner.model_validate(item)
            if runner.name == name:
                return runner.to_domain(scope)
        return None

    async def register_runner(
        self, scope: str, *, name: str, labels: Sequence[str], runner_group_id: int
    ) -> Registration:
        """``generate-jitconfig`` with the full label list (``self-hosted`` included)."""
        body = {
            "name": name,
            "runner_group_id": runner_group_id,
            "labels": list(labels),
            "work_folder": "_work",
        }
        raw = await self._call(
            "post", f"{scope_path(scope)}/actions/runners/generate-jitconfig", data=body
        )
        config = parse.JitConfig.model_validate(raw)
        return Registration(
            runner_id=config.runner.id, encoded_jit_config=config.encoded_jit_config
        )

    async def runner_group_id(self, organization: str, name: str) -> int:
        """The id of an organization's runner group, by name (case-insensitive)."""
        groups = await self._iterate(
            f"/orgs/{organization}/actions/runner-groups?per_page=100", "runner_groups"
        )
        for group in groups:
            if str(group.get("name", "")).lower() == name.lower():
                return int(group["id"])
        names = ", ".join(sorted(str(g.get("name")) for g in groups)) or "none"
        raise errors.NotFound(
            f"organization {organization} has no runner group named {name!r} (it has: {names});"
            " create it or fix github.runner_group"
        )

    async def organization_repositories(self, organization: str) -> list[str]:
        """Repositories whose jobs we serve at org scope: the App installation's repositories
        when authenticated as an App, else every repository of the organization."""
        if isinstance(self.tokens, auth.AppInstallation):
            items = await self._iterate("/installation/repositories?per_page=100", "repositories")
        else:
            items = await self._iterate(f"/orgs/{organization}/repos?per_page=100", "")
        return sorted(
            str(item["full_name"])
            for item in items
            if str(item.get("full_name", "")).lower().startswith(organization.lower() + "/")
            and not item.get("archived", False)
        )

    async def repository(self, repository: str) -> dict[str, Any]:
        return dict(await self._call("getitem", f"/repos/{repository}"))

    async def rate_limit(self) -> dict[str, Any]:
        return dict(await self._call("getitem", "/rate_limit"))

    async def delete_runner(self, scope: str, runner_id: int) -> bool:
        """Delete a runner; False if it was already gone. Raises ``RunnerBusy`` on 422."""
        try:
            await self._call("delete", f"{scope_path(scope)}/actions/runners/{runner_id}")
        except errors.NotFound:
            return False
        return True


def _jobs(raw: Iterable[dict[str, Any]], repository: str) -> list[model.Job]:
    jobs = []
    for item in raw:
        job = parse.WorkflowJob.model_validate(item).to_domain(repository)
        if job is not None:
            jobs.append(job)
    return jobs


def _classify(exc: gidgethub.BadRequest, url: str, *, method: str) -> errors.GitHubError:
    status = int(exc.status_code)
    text = f"GitHub answered {status} on {url}: {exc}"
    if status == 401:
        return errors.BadCredentials(
            f"{text}. The token is wrong or expired: set a valid GITHUB_TOKEN"
        )
    if status == 404:
        return errors.NotFound(text)
    if status == 409:
        return errors.RunnerNameTaken(text)
    if status == 422 and method == "delete":
        return errors.RunnerBusy(text)
    if status in (403, 429):
        return errors.RateLimited(0.0, text)
    return errors.GitHubError(text)
