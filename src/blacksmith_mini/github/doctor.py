"""``blacksmith-mini doctor``, GitHub part: credentials, permissions, reachability, runner group.

Each check names what it found and, when it fails, what to change. Tokens are never printed.

With ``image_rootfs`` (the Firecracker driver's ``rootfs_path``), it also compares the runner
version the image was built with (``<rootfs>.manifest.json``, written by ``image build``) with
GitHub's latest runner release: the image never updates its runner itself, so a newer release
is a warning to rebuild. GitHub being unreachable makes that check inconclusive, not failed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from blacksmith_mini.github import auth, client, errors

# The manifest ``image build`` writes next to the root filesystem (vm/firecracker/image.py
# ``manifest_path``; not imported: adapters do not import each other).
MANIFEST_SUFFIX = ".manifest.json"
LATEST_RUNNER = "/repos/actions/runner/releases/latest"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


async def run_checks(
    gh: client.GitHubClient,
    *,
    repositories: list[str],
    organization: str | None,
    runner_group: str | None,
    prefix: str,
    image_rootfs: Path | None = None,
) -> list[Check]:
    checks = await _github_checks(
        gh,
        repositories=repositories,
        organization=organization,
        runner_group=runner_group,
        prefix=prefix,
    )
    if image_rootfs is not None:
        checks.append(await runner_version_check(gh, rootfs=image_rootfs))
    return checks


def image_runner_version(rootfs: Path) -> str | None:
    """The runner version recorded in the manifest next to ``rootfs`` (None: no manifest)."""
    try:
        manifest = json.loads(rootfs.with_name(rootfs.name + MANIFEST_SUFFIX).read_text())
    except (OSError, ValueError):
        return None
    version = manifest.get("runner_version") if isinstance(manifest, dict) else None
    return str(version) if version else None


def _version(text: str) -> tuple[int, ...] | None:
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


async def runner_version_check(gh: client.GitHubClient, *, rootfs: Path) -> Check:
    """Warn (never fail) when GitHub's latest runner release is newer than the image's."""
    name = "runner version"
    ours = image_runner_version(rootfs)
    if ours is None:
        return Check(
            name=name,
            ok=True,
            detail=f"unknown: no {rootfs.name}{MANIFEST_SUFFIX} next to {rootfs} (rebuild with "
            "`blacksmith-mini image build --runner-version X` to record it)",
        )
    try:
        # The client has no method for this public endpoint; its _call keeps auth, the
        # rate-limit guard and error mapping.
        release = await gh._call("getitem", LATEST_RUNNER)
        latest = str(release.get("tag_name") or "") if isinstance(release, dict) else ""
    except errors.GitHubError as exc:
        return Check(
            name=name,
            ok=True,
            detail=f"image has {ours}; could not ask GitHub for its latest runner release "
            f"({type(exc).__name__})",
        )
    mine, theirs = _version(ours), _version(latest)
    if mine is None or theirs is None:
        return Check(name=name, ok=True, detail=f"image has {ours}; GitHub's latest is {latest!r}")
    if theirs > mine:
        wanted = ".".join(map(str, theirs))
        return Check(
            name=name,
            ok=True,
            detail=f"WARNING: image has runner {ours}, GitHub's latest is {latest}; the image "
            "does not update itself, and GitHub may stop serving outdated runners: rebuild "
            f"with `blacksmith-mini image build --runner-version {wanted}`",
        )
    return Check(name=name, ok=True, detail=f"image has {ours}, GitHub's latest ({latest})")


async def _github_checks(
    gh: client.GitHubClient,
    *,
    repositories: list[str],
    organization: str | None,
    runner_group: str | None,
    prefix: str,
) -> list[Check]:
    checks: list[Check] = []
    using_app = isinstance(gh.tokens, auth.AppInstallation)
    kind = "GitHub App installation" if using_app else "personal access token"
    try:
        limits = await gh.get("/rate_limit")
        core = limits.get("resources", {}).get("core", limits.get("rate", {}))
        checks.append(
            Check(
                name="credentials",
                ok=True,
                detail=f"{kind} accepted; {core.get('remaining')}/{core.get('limit')} "
                "requests left this hour",
            )
        )
    except errors.GitHubUnavailable as exc:
        fix = "check that this host reaches GitHub (proxy, DNS, firewall) and github.api_url"
        checks.append(Check(name="credentials", ok=False, detail=str(exc), fix=fix))
        return checks
    except errors.GitHubError as exc:
        fix = (
            "check github.client_id/app_id, the private key file and github.installation_id"
            if using_app
            else "create a token with the 'repo' scope (classic) or Administration: write "
            "(fine-grained) and set GITHUB_TOKEN"
        )
        checks.append(Check(name="credentials", ok=False, detail=str(exc), fix=fix))
        return checks
    for repository in repositories:
        checks.extend(await _repository_checks(gh, repository, prefix=prefix, using_app=using_app))
    if organization:
        checks.extend(
            await _organization_checks(
                gh, organization, runner_group=runner_group, prefix=prefix, using_app=using_app
            )
        )
    if not repositories and not organization:
        checks.append(
            Check(
                name="scope",
                ok=False,
                detail="no repository or organization configured",
                fix="set github.repositories (or REPO_OWNER and REPO_NAME) or github.organization",
            )
        )
    return checks


async def _repository_checks(
    gh: client.GitHubClient, repository: str, *, prefix: str, using_app: bool
) -> list[Check]:
    try:
        await gh.get(f"/repos/{repository}")
    except errors.NotFound:
        return [
            Check(
                name=f"repository {repository}",
                ok=False,
                detail="not found, or the credentials cannot see it",
                fix="check the name, and grant the token (or install the App) on it",
            )
        ]
    except errors.GitHubError as exc:
        return [Check(name=f"repository {repository}", ok=False, detail=str(exc))]
    try:
        runners = await gh.runners(repository, prefix=prefix)
        await gh.open_jobs(repository)
    except errors.GitHubError as exc:
        permission = "Administration: write and Actions: read" if using_app else "the 'repo' scope"
        return [
            Check(
                name=f"repository {repository}",
                ok=False,
                detail=f"reachable, but listing runners or jobs failed: {exc}",
                fix=f"grant {permission}",
            )
        ]
    return [
        Check(
            name=f"repository {repository}",
            ok=True,
            detail=f"reachable; runners and jobs readable ({len(runners)} of our runners)",
        )
    ]


async def _organization_checks(
    gh: client.GitHubClient,
    organization: str,
    *,
    runner_group: str | None,
    prefix: str,
    using_app: bool,
) -> list[Check]:
    checks = []
    scope = f"org:{organization}"
    try:
        runners = await gh.runners(scope, prefix=prefix)
        checks.append(
            Check(
                name=f"organization {organization}",
                ok=True,
                detail=f"org runners readable ({len(runners)} of ours)",
            )
        )
    except errors.GitHubError as exc:
        permission = (
            "Self-hosted runners: write (organization permission)" if using_app else "admin:org"
        )
        checks.append(
            Check(
                name=f"organization {organization}",
                ok=False,
                detail=str(exc),
                fix=f"grant {permission}",
            )
        )
        return checks
    if runner_group:
        try:
            group_id = await gh.runner_group_id(organization, runner_group)
            checks.append(
                Check(name="runner group", ok=True, detail=f"{runner_group!r} has id {group_id}")
            )
        except errors.GitHubError as exc:
            checks.append(
                Check(
                    name="runner group",
                    ok=False,
                    detail=str(exc),
                    fix="create the group in the organization's Actions settings",
                )
            )
    try:
        repositories = await gh.organization_repositories(organization)
        checks.append(
            Check(
                name="organization repositories",
                ok=bool(repositories),
                detail=f"{len(repositories)} repositories will be polled for queued jobs",
                fix=None if repositories else "install the App on the repositories to serve",
            )
        )
    except errors.GitHubError as exc:
        checks.append(Check(name="organization repositories", ok=False, detail=str(exc)))
    return checks
