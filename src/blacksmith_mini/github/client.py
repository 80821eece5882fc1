"""The GitHub REST client the control loop uses, through gidgethub over httpx2.

Every request carries GitHub's documented headers; GETs use gidgethub's ETag cache so an
unchanged answer comes back as a 304 that does not count against the primary rate limit.
A renamed or transferred repository's 301 is followed (same host, a few hops) and the move
recorded in ``GitHubClient.moved``. Every public method raises only ``errors.GitHubError``
subclasses, whatever GitHub (or the network) answers; error messages name the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import gidgethub
import httpx2
from gidgethub import httpx as gh_httpx

from blacksmith_mini.domain import model
from blacksmith_mini.github import auth, errors, parse, transport

log = logging.getLogger(__name__)
API_VERSION = "2022-11-28"
# A run turns in_progress as soon as one job starts; requested/waiting/pending runs can hold
# queued jobs too (environment protection, concurrency groups).
OPEN_RUN_STATUSES = ("queued", "in_progress", "requested", "waiting", "pending")
MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 307, 308})
_REPO_PATH = re.compile(r"^/repos/([^/?#]+)/([^/?#]+)")
_ORG_PATH = re.compile(r"^/orgs/([^/?#]+)")
_REPOSITORY_ID = re.compile(r"/repositories/(\d+)(?=/|$|\?)")


def scope_path(scope: str) -> str:
    """``owner/repo`` -> ``/repos/owner/repo``; ``org:NAME`` -> ``/orgs/NAME``."""
    if scope.startswith("org:"):
        return f"/orgs/{scope[4:]}"
    return f"/repos/{scope}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunnerGroup:
    """An organization's runner group and the repositories it serves."""

    id: int
    name: str
    visibility: str  # "all" | "selected" | "private"
    allows_public_repositories: bool
    selected_repositories: frozenset[str] | None  # full names, when visibility is "selected"


class _Redirect(Exception):
    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"{status} to {location}")
        self.status = status
        self.location = location


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
        self._base = api_url.rstrip("/")
        self._gh = gh_httpx.GitHubAPI(
            self._http,
            "blacksmith-mini",
            cache=transport.BoundedCache(maxsize=2048),
            base_url=self._base,
        )
        self._headers = {"X-GitHub-Api-Version": API_VERSION}
        self.moved: dict[str, str] = {}  # configured owner/repo -> its new full name

    @property
    def rate(self) -> transport.RateState:
        return self.guard.state

    async def close(self) -> None:
        await self._http.aclose()

    # --- one request: redirects, a refreshed token after a 401, errors translated ---------

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        return await self._redirected(url, lambda where: self._call_once(method, where, **kwargs))

    async def _iterate(self, url: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = await self._redirected(
            url, lambda where: self._iterate_once(where, key)
        )
        return items

    async def _redirected(self, url: str, call: Callable[[str], Awaitable[Any]]) -> Any:
        """``call(url)``, following up to ``MAX_REDIRECTS`` same-host redirects."""
        url = self._current(url)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                return await self._authorized(functools.partial(call, url))
            except _Redirect as redirect:
                url = await self._follow(url, redirect)
        raise errors.GitHubError(f"GitHub redirected {url} more than {MAX_REDIRECTS} times")

    async def _authorized(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """One call; after a 401 the token is refreshed and the call made once more."""
        try:
            return await call()
        except errors.BadCredentials:
            self.tokens.invalidate()
            return await call()

    async def _call_once(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            function = getattr(self._gh, method)
            token = await self.tokens.token()
            return await function(url, extra_headers=self._headers, oauth_token=token, **kwargs)
        except Exception as exc:
            raise self._translate(exc, url, method=method) from exc

    async def _iterate_once(self, url: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        try:
            token = await self.tokens.token()
            async for item in self._gh.getiter(
                url, extra_headers=self._headers, iterable_key=key, oauth_token=token
            ):
                if not isinstance(item, dict):
                    raise TypeError(f"expected objects in the list, got {item!r:.80}")
                items.append(item)
        except Exception as exc:
            raise self._translate(exc, url, method="getiter") from exc
        return items

    def _translate(self, exc: Exception, url: str, *, method: str) -> Exception:
        if isinstance(exc, errors.GitHubError | _Redirect):
            return exc
        if isinstance(exc, gidgethub.RedirectionException):
            status = int(exc.status_code)
            location = exc.headers.get("location")
            if status in REDIRECTS and location:
                return _Redirect(status, location)
            return errors.GitHubError(f"GitHub answered {status} on {url}; not followed")
        if isinstance(exc, gidgethub.RateLimitExceeded):
            return errors.RateLimited(self.guard.state.blocked_until or 0.0, str(exc))
        if isinstance(exc, gidgethub.GitHubBroken):
            return errors.GitHubUnavailable(f"GitHub error on {url}: {exc}")
        if isinstance(exc, gidgethub.BadRequest):
            return self._classify(exc, url, method=method)
        if isinstance(exc, gidgethub.GitHubException):
            return errors.GitHubError(f"GitHub answered unexpectedly on {url}: {exc}")
        if isinstance(exc, httpx2.HTTPError):
            return errors.GitHubUnavailable(f"GitHub unreachable on {url}: {exc}")
        return errors.GitHubError(
            f"GitHub replied with unexpected data on {url}: {exc.__class__.__name__}: {exc}"
        )

    def _classify(self, exc: gidgethub.BadRequest, url: str, *, method: str) -> errors.GitHubError:
        status = int(exc.status_code)
        text = f"GitHub answered {status} on {url}: {exc}"
        if status == 401:
            return errors.BadCredentials(
                f"{text}. The token is wrong or expired: set a valid GITHUB_TOKEN"
            )
        if status == 404:
            return errors.NotFound(f"{text}. {errors.not_found_hint(self._path(url))}")
        if status == 409:
            return errors.RunnerNameTaken(text)
        if status == 422 and method == "delete":
            return errors.RunnerBusy(text)
        if status in (403, 429):
            kind = transport.rate_limit_kind(status, exc.headers, message=str(exc))
            if kind is not None or status == 429:
                return errors.RateLimited(
                    self.guard.state.blocked_until or 0.0, f"{text} ({kind or 'secondary'} limit)"
                )
            app = isinstance(self.tokens, auth.AppInstallation)
            return errors.PermissionDenied(
                f"{text}. {errors.permission_hint(self._path(url), app=app)}"
            )
        return errors.GitHubError(text)

    # --- moved repositories ----------------------------------------------------------------

    def _path(self, url: str) -> str:
        path = url.removeprefix(self._base)
        return path if path.startswith("/") else httpx2.URL(url).path

    def _current(self, url: str) -> str:
        """``/repos/OLD/...`` -> ``/repos/NEW/...`` for a repository known to have moved."""
        found = _REPO_PATH.match(url)
        if found:
            name = f"{found[1]}/{found[2]}"
            if name in self.moved:
                return f"/repos/{self.moved[name]}{url[found.end() :]}"
        return url

    async def _follow(self, url: str, redirect: _Redirect) -> str:
        base, target = httpx2.URL(self._base), httpx2.URL(redirect.location)
        if target.is_relative_url:
            target = base.join(redirect.location)
        if (target.scheme, target.host, target.port) != (base.scheme, base.host, base.port):
            raise errors.GitHubError(
                f"GitHub answered {redirect.status} on {url} with a redirect to another host "
                f"({target.host}); not followed"
            )
        found = _REPO_PATH.match(self._path(url))
        number = _REPOSITORY_ID.search(target.path)
        if found and number:
            old = f"{found[1]}/{found[2]}"
            prefix = target.path[: number.start()]
            try:
                info = await self._call_once("getitem", f"{prefix}/repositories/{number[1]}")
                new = str(info["full_name"])
            except (errors.GitHubError, _Redirect, KeyError, TypeError):
                new = ""
            original = next((k for k, v in self.moved.items() if v == old), old)
            if new and new != old and self.moved.get(original) != new:
                self.moved[original] = new
                log.warning(
                    "GitHub repository %s moved to %s (renamed or transferred): following its "
                    "redirects; update github.repositories to %s",
                    original,
                    new,
                    new,
                )
        return str(target)

    # --- jobs ------------------------------------------------------------------------------

    @errors.only_github_errors
    async def open_jobs(self, repository: str) -> list[model.Job]:
        """Jobs of the repository's open runs: queued, in progress (a run turns in_progress as
        soon as one job starts), and requested/waiting/pending (they can hold queued jobs)."""
        run_ids: list[int] = []
        for status in OPEN_RUN_STATUSES:
            runs = await self._iterate(
                f"/repos/{repository}/actions/runs?status={status}&per_page=100", "workflow_runs"
            )
            run_ids.extend(int(run["id"]) for run in runs)
        jobs: dict[int, model.Job] = {}
        for run_id in dict.fromkeys(run_ids):
            url = f"/repos/{repository}/actions/runs/{run_id}/jobs?per_page=100"
            raw = await self._iterate(url, "jobs")
            for item in raw:
                job = parse.validated(parse.WorkflowJob, item, url=url).to_domain(repository)
                if job is not None:
                    jobs.setdefault(job.id, job)
        return list(jobs.values())

    @errors.only_github_errors
    async def job(self, repository: str, job_id: int) -> model.Job | None:
        url = f"/repos/{repository}/actions/jobs/{job_id}"
        raw = await self._call("getitem", url)
        return parse.validated(parse.WorkflowJob, raw, url=url).to_domain(repository)

    @errors.only_github_errors
    @errors.rerun_refusals
    async def rerun_job(self, repository: str, job_id: int) -> None:
        """Re-run one job in a new run attempt (201); refusals: ``errors.rerun_refusals``."""
        await self._call("post", f"/repos/{repository}/actions/jobs/{job_id}/rerun", data={})

    # --- runners ---------------------------------------------------------------------------

    @errors.only_github_errors
    async def runners(self, scope: str, *, prefix: str) -> list[model.RunnerInfo]:
        url = f"{scope_path(scope)}/actions/runners?per_page=100"
        raw = await self._iterate(url, "runners")
        found = (parse.validated(parse.Runner, item, url=url) for item in raw)
        return [r.to_domain(scope) for r in found if r.name.startswith(f"{prefix}-")]

    @errors.only_github_errors
    async def runner_by_name(self, scope: str, name: str) -> model.RunnerInfo | None:
        url = f"{scope_path(scope)}/actions/runners?name={name}&per_page=100"
        raw = await self._iterate(url, "runners")
        for item in raw:
            runner = parse.validated(parse.Runner, item, url=url)
            if runner.name == name:
                return runner.to_domain(scope)
        return None

    @errors.only_github_errors
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
        url = f"{scope_path(scope)}/actions/runners/generate-jitconfig"
        raw = await self._call("post", url, data=body)
        config = parse.validated(parse.JitConfig, raw, url=url)
        return Registration(
            runner_id=config.runner.id, encoded_jit_config=config.encoded_jit_config
        )

    @errors.only_github_errors
    async def runner_group_id(self, organization: str, name: str) -> int:
        """The id of an organization's runner group, by name (case-insensitive)."""
        return (await self._group(organization, name)).id

    @errors.only_github_errors
    async def runner_group(self, organization: str, name: str) -> RunnerGroup:
        """An organization's runner group by name, with the repositories it serves."""
        group = await self._group(organization, name)
        selected: frozenset[str] | None = None
        if group.visibility == "selected":
            url = f"/orgs/{organization}/actions/runner-groups/{group.id}/repositories?per_page=100"
            items = await self._iterate(url, "repositories")
            selected = frozenset(str(item["full_name"]) for item in items)
        return RunnerGroup(
            id=group.id,
            name=group.name,
            visibility=group.visibility,
            allows_public_repositories=group.allows_public_repositories,
            selected_repositories=selected,
        )

    async def _group(self, organization: str, name: str) -> parse.RunnerGroup:
        url = f"/orgs/{organization}/actions/runner-groups?per_page=100"
        groups = [
            parse.validated(parse.RunnerGroup, item, url=url)
            for item in await self._iterate(url, "runner_groups")
        ]
        for group in groups:
            if group.name.lower() == name.lower():
                return group
        names = ", ".join(sorted(g.name for g in groups)) or "none"
        raise errors.NotFound(
            f"organization {organization} has no runner group named {name!r} (it has: {names});"
            " create it or fix github.runner_group"
        )

    @errors.only_github_errors
    async def organization_repositories(self, organization: str) -> list[str]:
        """Repositories whose jobs we serve at org scope: the App installation's repositories
        when authenticated as an App, else every repository of the organization."""
        return sorted(await self._organization_repositories(organization))

    @errors.only_github_errors
    async def organization_repository_visibility(self, organization: str) -> dict[str, bool]:
        """The same repositories as ``organization_repositories``: full name -> private."""
        return await self._organization_repositories(organization)

    async def _organization_repositories(self, organization: str) -> dict[str, bool]:
        if isinstance(self.tokens, auth.AppInstallation):
            items = await self._iterate("/installation/repositories?per_page=100", "repositories")
        else:
            items = await self._iterate(f"/orgs/{organization}/repos?per_page=100", "")
        found: dict[str, bool] = {}
        for item in items:
            name = str(item.get("full_name", ""))
            if name.lower().startswith(organization.lower() + "/") and not item.get("archived"):
                private = item.get("private")
                found[name] = (
                    private if isinstance(private, bool) else item.get("visibility") != "public"
                )
        return found

    @errors.only_github_errors
    async def get(self, path: str) -> dict[str, Any]:
        """One resource as GitHub sends it (``/rate_limit``, ``/repos/{r}``, a workflow run)."""
        return dict(await self._call("getitem", path))

    @errors.only_github_errors
    async def delete_runner(self, scope: str, runner_id: int) -> bool:
        """Delete a runner; False if it was already gone. Raises ``RunnerBusy`` on 422."""
        try:
            await self._call("delete", f"{scope_path(scope)}/actions/runners/{runner_id}")
        except errors.NotFound:
            return False
        return True
