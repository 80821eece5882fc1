"""Errors the GitHub adapter raises; each message says what happened and what to do."""

from __future__ import annotations


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
    """404."""
