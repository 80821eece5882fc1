"""Errors the GitHub adapter raises; each message says what happened and what to do."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
_REPO_PATH = re.compile(r"^/repos/([^/?#]+)/([^/?#]+)")
_ORG_PATH = re.compile(r"^/orgs/([^/?#]+)")


class GitHubError(Exception):
    """Any failed GitHub call."""


class GitHubUnavailable(GitHubError):
    """GitHub could not be reached or answered 5xx; the loop retries on a later tick."""


class RateLimited(GitHubError):
    """GitHub asked us to wait; no call is made before ``until`` (epoch seconds)."""

    def __init__(self, until: float, message: str) -> None:
        super().__init__(message)
        self.until = until


class BadCredentials(GitHubError):
    """401: the token is wrong or expired."""


class RunnerNameTaken(GitHubError):
    """409 from generate-jitconfig: a runner with this name exists already."""


class RunnerBusy(GitHubError):
    """422 on delete: the runner is still running a job."""


class NotFound(GitHubError):
    """404: the repository, organization, runner or group does not exist or is not visible."""


class PermissionDenied(GitHubError):
    """403 that is not a rate limit: the token or App lacks a permission the message names.

    Never a reason to stop other requests: only calls needing that permission fail."""


class RerunRefused(GitHubError):
    """GitHub will not re-run the job; ``status`` and GitHub's own words (``reason``) say why.

    403 "This workflow is already running": another job of its run is still open, so it may
    pass once the whole run has completed (``still_running``); 403 "Unable to retry this
    workflow run because it was created over a month ago": past GitHub's 30-day window; other
    403s ("This workflow run cannot be retried"), 404 (no such job, or not visible), 410, 422.
    A missing permission is ``PermissionDenied``, a rate limit ``RateLimited``, not this."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def still_running(self) -> bool:
        return "already running" in self.reason.lower()


def only_github_errors(
    function: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Whatever escapes a public method is a ``GitHubError``."""

    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await function(*args, **kwargs)
        except GitHubError:
            raise
        except Exception as exc:
            raise GitHubError(
                f"unexpected failure talking to GitHub ({function.__name__}): "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc

    return wrapper


def rerun_refusals(
    function: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """A re-run GitHub declines becomes ``RerunRefused``: a 403 that is neither a rate limit
    (already ``RateLimited``) nor a missing permission ("Resource not accessible by ..."), or a
    404, 410 or 422. The status and words come from GitHub's answer, the error's cause."""

    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await function(*args, **kwargs)
        except (RateLimited, GitHubUnavailable, BadCredentials, RerunRefused):
            raise
        except GitHubError as exc:
            refused = _rerun_refusal(exc)
            if refused is None:
                raise
            raise refused from exc

    return wrapper


def _rerun_refusal(exc: GitHubError) -> RerunRefused | None:
    answer = exc.__cause__
    status = getattr(answer, "status_code", None)
    if answer is None or status is None:
        return None
    status, reason = int(status), str(answer)
    if status == 403 and "not accessible" in reason.lower():
        return None
    if status not in (403, 404, 410, 422):
        return None
    lowered = reason.lower()
    if "already running" in lowered:
        hint = "; a job can be re-run only once its whole run has completed"
    elif "month ago" in lowered:
        hint = "; GitHub re-runs only runs less than 30 days old"
    elif status == 404:
        hint = "; the job does not exist or this token cannot see its repository"
    else:
        hint = ""
    return RerunRefused(
        f"GitHub refused to re-run the job ({status}): {reason}{hint}", status=status, reason=reason
    )


def not_found_hint(path: str) -> str:
    repo, org = _REPO_PATH.match(path), _ORG_PATH.match(path)
    if repo:
        name = f"{repo[1]}/{repo[2]}"
        return (
            f"Repository {name} does not exist or this token cannot see it (deleted, or "
            f"renamed long ago): fix github.repositories, or install the GitHub App on {name}"
        )
    if org:
        return (
            f"Organization {org[1]} (or the object asked for) does not exist or this token "
            "cannot see it: fix github.organization, or install the GitHub App on it"
        )
    return "The object does not exist or this token cannot see it"


def permission_hint(path: str, *, app: bool) -> str:
    repo, org = _REPO_PATH.match(path), _ORG_PATH.match(path)
    target = f"{repo[1]}/{repo[2]}" if repo else (org[1] if org else "this account")
    if "/actions/runner" in path and org:
        permission, scope = (
            "Self-hosted runners (organization_self_hosted_runners): write",
            "admin:org",
        )
    elif "/actions/runner" in path:
        permission, scope = "Administration: write", "repo"
    elif path.endswith("/rerun") or "/rerun-" in path:
        permission, scope = "Actions: write", "repo"
    elif "/actions/" in path:
        permission, scope = "Actions: read", "repo"
    else:
        permission, scope = "Metadata: read", "repo"
    if app:
        return (
            f"The GitHub App needs {permission} on {target}: grant it in the App's settings "
            "and accept the new permissions in the installation"
        )
    return (
        f"The token needs the `{scope}` scope on {target} (a fine-grained token or GitHub "
        f"App: {permission})"
    )
