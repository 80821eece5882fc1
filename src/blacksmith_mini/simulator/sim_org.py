"""The simulated GitHub's App, installation, organization, repository and runner-group routes,
and the App's webhook delivery log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from blacksmith_mini.github import parse
from blacksmith_mini.simulator import formats, state, webhook_sender
from blacksmith_mini.simulator.sim_http import error, page

if TYPE_CHECKING:
    from blacksmith_mini.simulator.sim_app import SimApp


def org_routes(app: FastAPI, sim: state.SimState, *, sim_app: SimApp | None) -> None:
    def installation() -> dict[str, Any]:
        assert sim_app is not None
        return {
            "id": sim_app.installation_id,
            "app_id": int(sim_app.app_id),
            "target_type": "Organization",
            "permissions": {
                "administration": "write",
                "organization_self_hosted_runners": "write",
                "actions": "read",
                "metadata": "read",
            },
        }

    def has_org(org: str) -> bool:
        return any(r.startswith(org.lower() + "/") for r in sim.repositories)

    @app.get("/app")
    async def get_app() -> Response:
        assert sim_app is not None
        return JSONResponse(
            {
                "id": int(sim_app.app_id),
                "slug": "blacksmith-mini-sim",
                "name": "Blacksmith Mini (simulated)",
            }
        )

    @app.post("/app/installations/{installation_id}/access_tokens")
    async def access_token(installation_id: int) -> Response:
        assert sim_app is not None
        if installation_id != sim_app.installation_id:
            return error(404, "Not Found")
        token, expires = sim_app.issue(time.time())
        return JSONResponse(
            {
                "token": token,
                "expires_at": parse.iso(expires),
                "permissions": installation()["permissions"],
                "repository_selection": "all",
            },
            status_code=201,
        )

    @app.get("/repos/{owner}/{repo}/installation")
    async def repo_installation(owner: str, repo: str) -> Response:
        if sim.repository(f"{owner}/{repo}") is None:
            return error(404, "Not Found")
        return JSONResponse(installation())

    @app.get("/orgs/{org}/installation")
    async def org_installation(org: str) -> Response:
        if not has_org(org):
            return error(404, "Not Found")
        return JSONResponse(installation())

    def repos_of(org: str | None) -> list[dict[str, Any]]:
        return [
            formats.repository(repo)
            for repo in sim.repos.values()
            if not repo.removed and (org is None or repo.full_name.startswith(org.lower() + "/"))
        ]

    @app.get("/installation/repositories")
    async def installation_repositories() -> Response:
        repos = repos_of(None)
        return JSONResponse({"total_count": len(repos), "repositories": repos})

    @app.get("/orgs/{org}/repos")
    async def org_repos(org: str) -> Response:
        return JSONResponse(repos_of(org))

    @app.get("/repos/{owner}/{repo}")
    async def get_repo(owner: str, repo: str) -> Response:
        found = sim.repository(f"{owner}/{repo}")
        if found is None:
            return error(404, "Not Found")
        return JSONResponse({**formats.repository(found), "default_branch": "main"})

    @app.get("/orgs/{org}/actions/runner-groups")
    async def runner_groups(org: str, request: Request) -> Response:
        if not has_org(org):
            return error(404, "Not Found")
        groups = [formats.runner_group(g, org) for _, g in sorted(sim.groups.items())]
        return page(request, groups, key="runner_groups")

    @app.get("/orgs/{org}/actions/runner-groups/{group_id}")
    async def runner_group(org: str, group_id: int) -> Response:
        group = sim.groups.get(group_id)
        if not has_org(org) or group is None:
            return error(404, "Not Found")
        return JSONResponse(formats.runner_group(group, org))

    @app.get("/orgs/{org}/actions/runner-groups/{group_id}/repositories")
    async def runner_group_repositories(org: str, group_id: int, request: Request) -> Response:
        group = sim.groups.get(group_id)
        if not has_org(org) or group is None:
            return error(404, "Not Found")
        chosen = [sim.repos[i] for i in group.repository_ids if i in sim.repos]
        found = [formats.repository(r) for r in chosen if not r.removed]
        return page(request, found, key="repositories")

    @app.get("/app/hook/deliveries")
    async def deliveries(request: Request) -> Response:
        sender: webhook_sender.WebhookSender | None = app.state.sender
        log = [] if sender is None else sender.log
        per_page = min(100, int(request.query_params.get("per_page", "30")))
        cursor = int(request.query_params.get("cursor", "0") or 0)
        newest_first = sorted(log, key=lambda d: d.id, reverse=True)
        if cursor:
            newest_first = [d for d in newest_first if d.id < cursor]
        chunk = newest_first[:per_page]
        headers = {}
        if len(newest_first) > per_page:
            following = request.url.include_query_params(cursor=chunk[-1].id)
            headers["link"] = f'<{following}>; rel="next"'
        return JSONResponse([d.as_github() for d in chunk], headers=headers)

    @app.post("/app/hook/deliveries/{delivery_id}/attempts")
    async def redeliver(delivery_id: int) -> Response:
        sender: webhook_sender.WebhookSender | None = app.state.sender
        if sender is None or not sender.redeliver(delivery_id):
            return error(404, "Not Found")
        return JSONResponse({}, status_code=202)
