"""The simulated objects rendered in GitHub's REST field names and formats."""

from __future__ import annotations

from typing import Any

from blacksmith_mini.github.parse import iso
from blacksmith_mini.simulator import state

API = "https://api.github.com"
WEB = "https://github.com"


def _owner(repository: str) -> dict[str, Any]:
    login = repository.split("/")[0]
    return {
        "login": login,
        "id": state.REPO_OWNER_ID,
        "node_id": "O_kgDOsim",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{state.REPO_OWNER_ID}?v=4",
        "gravatar_id": "",
        "url": f"{API}/users/{login}",
        "html_url": f"{WEB}/{login}",
        "followers_url": f"{API}/users/{login}/followers",
        "following_url": f"{API}/users/{login}/following{{/other_user}}",
        "gists_url": f"{API}/users/{login}/gists{{/gist_id}}",
        "starred_url": f"{API}/users/{login}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{API}/users/{login}/subscriptions",
        "organizations_url": f"{API}/users/{login}/orgs",
        "repos_url": f"{API}/users/{login}/repos",
        "events_url": f"{API}/users/{login}/events{{/privacy}}",
        "received_events_url": f"{API}/users/{login}/received_events",
        "type": "Organization",
        "site_admin": False,
    }


def repository(repo: state.SimRepository) -> dict[str, Any]:
    name = repo.full_name
    url = f"{API}/repos/{name}"
    minimal = {
        "id": repo.id,
        "node_id": f"R_kgDOsim{repo.id}",
        "name": name.split("/")[1],
        "full_name": name,
        "owner": _owner(name),
        "private": repo.private,
        "visibility": "private" if repo.private else "public",
        "html_url": f"{WEB}/{name}",
        "description": None,
        "fork": False,
        "url": url,
    }
    for key in (
        "archive",
        "assignees",
        "blobs",
        "branches",
        "collaborators",
        "comments",
        "commits",
        "compare",
        "contents",
        "contributors",
        "deployments",
        "downloads",
        "events",
        "forks",
        "git_commits",
        "git_refs",
        "git_tags",
        "issue_comment",
        "issue_events",
        "issues",
        "keys",
        "labels",
        "languages",
        "merges",
        "milestones",
        "notifications",
        "pulls",
        "releases",
        "stargazers",
        "statuses",
        "subscribers",
        "subscription",
        "tags",
        "teams",
        "trees",
        "hooks",
    ):
        minimal[f"{key}_url"] = f"{url}/{key}"
    return minimal


def job(item: state.SimJob, group_name: str | None = None) -> dict[str, Any]:
    base = f"{API}/repos/{item.repository}/actions"
    steps = []
    if item.started_at is not None:
        steps.append(
            {
                "name": "Set up job",
                "status": "completed",
                "conclusion": "success",
                "number": 1,
                "started_at": iso(item.started_at),
                "completed_at": iso(item.started_at),
            }
        )
    return {
        "id": item.id,
        "run_id": item.run_id,
        "run_url": f"{base}/runs/{item.run_id}",
        "run_attempt": item.run_attempt,
        "node_id": f"CR_sim{item.id}",
        "head_sha": "f" * 40,
        "url": f"{base}/jobs/{item.id}",
        "html_url": f"{WEB}/{item.repository}/actions/runs/{item.run_id}/job/{item.id}",
        "status": item.status,
        "conclusion": item.conclusion,
        "created_at": iso(item.created_at),
        "started_at": iso(item.started_at or item.created_at),
        "completed_at": iso(item.completed_at) if item.completed_at else None,
        "name": item.name,
        "steps": steps,
        "check_run_url": f"{API}/repos/{item.repository}/check-runs/{item.id}",
        "labels": item.labels,
        "runner_id": item.runner_id,
        "runner_name": item.runner_name,
        "runner_group_id": (item.runner_group_id or 1) if item.runner_id else None,
        "runner_group_name": (group_name or "Default") if item.runner_id else None,
        "workflow_name": item.workflow_name,
        "head_branch": "main",
    }


def run(item: state.SimRun, found: state.SimRepository) -> dict[str, Any]:
    base = f"{API}/repos/{item.repository}/actions/runs/{item.id}"
    repo = repository(found)
    return {
        "id": item.id,
        "name": item.name,
        "node_id": f"WFR_sim{item.id}",
        "head_branch": "main",
        "head_sha": "f" * 40,
        "path": ".github/workflows/ci.yml",
        "display_title": item.name,
        "run_number": item.run_number,
        "event": "push",
        "status": item.status,
        "conclusion": item.conclusion,
        "workflow_id": 1,
        "check_suite_id": item.id,
        "check_suite_node_id": f"CS_sim{item.id}",
        "url": base,
        "html_url": f"{WEB}/{item.repository}/actions/runs/{item.id}",
        "pull_requests": [],
        "created_at": iso(item.created_at),
        "updated_at": iso(item.updated_at),
        "run_attempt": 1,
        "run_started_at": iso(item.created_at),
        "jobs_url": f"{base}/jobs",
        "logs_url": f"{base}/logs",
        "check_suite_url": f"{API}/repos/{item.repository}/check-suites/{item.id}",
        "artifacts_url": f"{base}/artifacts",
        "cancel_url": f"{base}/cancel",
        "rerun_url": f"{base}/rerun",
        "workflow_url": f"{API}/repos/{item.repository}/actions/workflows/1",
        "head_commit": None,
        "repository": repo,
        "head_repository": repo,
    }


def runner(item: state.SimRunner) -> dict[str, Any]:
    return {
        "id": item.id,
        "name": item.name,
        "os": "Linux",
        "status": item.status,
        "busy": item.busy,
        "ephemeral": True,
        "runner_group_id": item.group_id,
        "labels": [
            {"id": index + 1, "name": label, "type": "custom"}
            for index, label in enumerate(item.labels)
        ],
    }


def runner_group(group: state.SimGroup, org: str) -> dict[str, Any]:
    base = f"{API}/orgs/{org}/actions/runner-groups/{group.id}"
    found = {
        "id": group.id,
        "name": group.name,
        "visibility": group.visibility,
        "default": group.id == 1,
        "runners_url": f"{base}/runners",
        "inherited": False,
        "allows_public_repositories": group.allows_public_repositories,
        "restricted_to_workflows": False,
        "selected_workflows": [],
        "workflow_restrictions_read_only": False,
    }
    if group.visibility == "selected":
        found["selected_repositories_url"] = f"{base}/repositories"
    return found
