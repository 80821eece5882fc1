"""A job's cache scopes from its workflow run as GitHub reports it: own ref, base and default
branch read in that order; a pull request writes only refs/pull/N/merge; what cannot be told
(a fork's pull request, no head branch) reads the default branch only and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from blacksmith_mini.cache import runscope

MAIN = "refs/heads/main"


def payload(**fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": 7,
        "event": "push",
        "head_branch": "main",
        "pull_requests": [],
        "repository": {"full_name": "acme/app"},
        "head_repository": {"full_name": "acme/app"},
    }
    found.update(fields)
    return found


def pull(number: int, base: str) -> dict[str, Any]:
    return {"number": number, "base": {"ref": base, "repo": {"name": "app"}}, "head": {}}


CASES = [
    ("push to main", payload(), (MAIN,), MAIN),
    (
        "push to a feature branch",
        payload(head_branch="feat"),
        ("refs/heads/feat", MAIN),
        "refs/heads/feat",
    ),
    (
        "pull request into release",
        payload(event="pull_request", head_branch="feat", pull_requests=[pull(5, "release")]),
        ("refs/pull/5/merge", "refs/heads/release", MAIN),
        "refs/pull/5/merge",
    ),
    (
        "pull request from main of a fork (GitHub lists no pull request)",
        payload(
            event="pull_request",
            head_branch="main",
            head_repository={"full_name": "mallory/app"},
        ),
        (MAIN,),
        None,
    ),
    (
        "pull request review",
        payload(event="pull_request_review", pull_requests=[pull(9, "main")]),
        ("refs/pull/9/merge", MAIN),
        "refs/pull/9/merge",
    ),
    (
        "pull_request_target runs as its base",
        payload(event="pull_request_target", head_branch="feat", pull_requests=[pull(3, "dev")]),
        ("refs/heads/dev", MAIN),
        "refs/heads/dev",
    ),
    (
        "pull_request_target with no pull request listed",
        payload(event="pull_request_target", head_branch="feat"),
        (MAIN,),
        None,
    ),
    (
        "a push run whose head is another repository",
        payload(head_branch="main", head_repository={"full_name": "other/app"}),
        (MAIN,),
        None,
    ),
    ("no head branch", payload(head_branch=None, event="workflow_dispatch"), (MAIN,), None),
    (
        "schedule on the default branch",
        payload(event="schedule"),
        (MAIN,),
        MAIN,
    ),
]


@pytest.mark.parametrize(("name", "run", "reads", "write"), CASES, ids=[c[0] for c in CASES])
def test_scopes_of_a_run(
    name: str, run: dict[str, Any], reads: tuple[str, ...], write: str | None
) -> None:
    scopes = runscope.run_scopes(runscope.run_facts(run, default_branch="main"))
    assert scopes.reads == reads
    assert scopes.write == write


def test_a_pull_request_never_writes_the_default_branch() -> None:
    for _, run, _, _ in CASES:
        facts = runscope.run_facts(run, default_branch="main")
        if facts.event.startswith("pull_request") and facts.event != "pull_request_target":
            assert runscope.run_scopes(facts).write != MAIN


def test_not_a_run_object_is_named() -> None:
    with pytest.raises(runscope.RunFactsError, match="repository"):
        runscope.run_facts({"event": "push"}, default_branch="main")
