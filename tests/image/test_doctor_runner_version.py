"""``doctor`` warns when GitHub's latest runner release is newer than the image's runner."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx2
import pytest

from blacksmith_mini.github import client, doctor
from blacksmith_mini.vm.firecracker import image

pytestmark = pytest.mark.anyio
API = "https://api.github.com"


def github(handler: Callable[[httpx2.Request], httpx2.Response]) -> client.GitHubClient:
    return client.GitHubClient(
        token="t", api_url=API, inner_transport=httpx2.MockTransport(handler), mutation_spacing=0
    )


def latest(tag: str) -> Callable[[httpx2.Request], httpx2.Response]:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/repos/actions/runner/releases/latest":
            return httpx2.Response(200, json={"tag_name": tag, "name": tag})
        return httpx2.Response(404, json={"message": "Not Found"})

    return handler


def built_rootfs(tmp_path: Path, version: str) -> Path:
    rootfs = tmp_path / "rootfs.ext4"
    rootfs.write_bytes(b"")
    image.manifest_path(rootfs).write_text(json.dumps({"runner_version": version}))
    return rootfs


async def test_newer_release_is_a_warning_with_the_fix(tmp_path: Path) -> None:
    gh = github(latest("v2.330.0"))
    try:
        check = await doctor.runner_version_check(gh, rootfs=built_rootfs(tmp_path, "2.328.0"))
    finally:
        await gh.close()
    assert check.ok  # a warning: doctor does not fail for it
    assert "WARNING" in check.detail and "2.328.0" in check.detail and "v2.330.0" in check.detail
    assert "image build --runner-version 2.330.0" in check.detail


async def test_same_or_older_release_is_fine(tmp_path: Path) -> None:
    for tag in ("v2.328.0", "v2.327.1"):
        gh = github(latest(tag))
        try:
            check = await doctor.runner_version_check(gh, rootfs=built_rootfs(tmp_path, "2.328.0"))
        finally:
            await gh.close()
        assert check.ok and "WARNING" not in check.detail, check


async def test_github_unreachable_or_no_manifest_is_inconclusive(tmp_path: Path) -> None:
    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("no route to host", request=request)

    gh = github(down)
    try:
        check = await doctor.runner_version_check(gh, rootfs=built_rootfs(tmp_path, "2.328.0"))
        assert check.ok and "could not ask GitHub" in check.detail and "2.328.0" in check.detail
        missing = await doctor.runner_version_check(gh, rootfs=tmp_path / "other.ext4")
        assert missing.ok and "other.ext4.manifest.json" in missing.detail
    finally:
        await gh.close()


async def test_run_checks_adds_it_when_given_the_rootfs(tmp_path: Path) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/rate_limit":
            return httpx2.Response(200, json={"resources": {"core": {"remaining": 1, "limit": 5}}})
        return latest("v9.0.0")(request)

    gh = github(handler)
    try:
        checks = await doctor.run_checks(
            gh,
            repositories=[],
            organization=None,
            runner_group=None,
            prefix="bm-",
            image_rootfs=built_rootfs(tmp_path, "2.328.0"),
        )
    finally:
        await gh.close()
    assert checks[-1].name == "runner version" and "v9.0.0" in checks[-1].detail
