"""Which cache scopes a job gets, from the workflow run GitHub reports for it. Pure: no I/O.

The VM is untrusted (it runs the job's code), so nothing it says decides its scopes: the
control plane reads the job's run from GitHub's API (``GET /repos/{r}/actions/runs/{id}``) and
derives ``GITHUB_REF`` and ``GITHUB_BASE_REF`` as the runner would set them:

- ``pull_request`` (and its ``_review`` / ``_review_comment`` kin): ``refs/pull/N/merge``
  with the base branch, from the run's ``pull_requests``. GitHub leaves ``pull_requests``
  empty for a pull request from a fork, so the number is unknown: such a job reads the
  default branch only and writes nothing (GitHub would also let it read its base and write
  its own pull request's scope; never more).
- ``pull_request_target``: runs in the base branch's context, so ``refs/heads/<base>``
  (GitHub's own rule, cache poisoning risk included); base unknown: read default only.
- anything else (push, workflow_dispatch, schedule, merge_group, ...): ``refs/heads/<head
  branch>``. A run whose head repository is not the repository itself reads the default
  branch only.
- no head branch at all: read the default branch only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blacksmith_mini.cache.scope import Scopes, branch_ref, own_scopes

PULL_EVENTS = ("pull_request", "pull_request_review", "pull_request_review_comment")


@dataclass(frozen=True)
class RunFacts:
    """What of a workflow run decides its cache scopes."""

    repository: str
    event: str
    head_branch: str | None
    default_branch: str
    head_repository: str | None
    pull_number: int | None = None
    base_branch: str | None = None


class RunFactsError(ValueError):
    """GitHub's run object lacks what the scopes need; the message says which field."""


def run_facts(payload: dict[str, Any], *, default_branch: str) -> RunFacts:
    """The facts of GitHub's workflow-run JSON (whose ``repository`` is the minimal one,
    without ``default_branch``: the caller reads it from ``GET /repos/{r}``);
    ``RunFactsError`` when it is not a run object."""
    try:
        name = str(payload["repository"]["full_name"])
        event = str(payload["event"])
    except (KeyError, TypeError) as error:
        raise RunFactsError(f"a workflow run without {error}: not GitHub's run object") from None
    head = payload.get("head_repository")
    pulls = [p for p in payload.get("pull_requests") or [] if isinstance(p, dict)]
    chosen: dict[str, Any] = pulls[0] if pulls else {}
    found_base = chosen.get("base")
    base: dict[str, Any] = found_base if isinstance(found_base, dict) else {}
    number = chosen.get("number")
    return RunFacts(
        repository=name,
        event=event,
        head_branch=payload.get("head_branch") or None,
        default_branch=default_branch,
        head_repository=str(head["full_name"]) if isinstance(head, dict) else None,
        pull_number=int(number) if isinstance(number, int) else None,
        base_branch=str(base["ref"]) if base.get("ref") else None,
    )


def run_scopes(run: RunFacts) -> Scopes:
    """The scopes a job of ``run`` reads (in lookup order) and writes."""
    default_only = Scopes(reads=(branch_ref(run.default_branch),), write=None)
    if run.event in PULL_EVENTS:
        if run.pull_number is None or run.base_branch is None:
            return default_only
        return own_scopes(
            ref=f"refs/pull/{run.pull_number}/merge",
            default_branch=run.default_branch,
            base_ref=run.base_branch,
        )
    if run.event == "pull_request_target":
        if run.base_branch is None:
            return default_only
        return own_scopes(ref=run.base_branch, default_branch=run.default_branch)
    if run.head_branch is None:
        return default_only
    if run.head_repository is not None and run.head_repository != run.repository:
        return default_only
    return own_scopes(ref=run.head_branch, default_branch=run.default_branch)
