"""``cache list / delete / metrics`` against a running service, like ``gh cache``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx2
import pytest
from typer.testing import CliRunner

from blacksmith_mini.cache import tokens
from blacksmith_mini.cache.cli import app
from blacksmith_mini.cache.twirp import PREFIX

from .node_support import ADMIN, SECRET, CacheProcess

MAIN = "refs/heads/main"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CacheProcess]:
    found = CacheProcess(tmp_path_factory.mktemp("cli-service"))
    yield found
    found.stop()


def save(service: CacheProcess, key: str, data: bytes) -> None:
    claim = tokens.Claim("acme/cli", MAIN, (MAIN,), int(time.time()) + 600, "vm-cli")
    headers = {"authorization": f"Bearer {tokens.mint(SECRET, claim)}"}
    body = {"key": key, "version": "v" * 64}
    created = httpx2.post(f"{service.url}{PREFIX[1:]}/CreateCacheEntry", json=body, headers=headers)
    httpx2.put(created.json()["signed_upload_url"], content=data).raise_for_status()
    done = httpx2.post(
        f"{service.url}{PREFIX[1:]}/FinalizeCacheEntryUpload",
        json=body | {"size_bytes": str(len(data))},
        headers=headers,
    )
    assert done.json()["ok"], done.text


def cli(service: CacheProcess, *arguments: str) -> str:
    result = CliRunner().invoke(app, [*arguments, "--url", service.url, "--token", ADMIN])
    assert result.exit_code == 0, result.output
    return result.output


def test_list_then_delete_by_key_and_by_id(service: CacheProcess) -> None:
    save(service, "npm-linux-1", b"x" * 3000)
    save(service, "npm-linux-2", b"y" * 10)
    listed = cli(service, "list", "--repository", "acme/cli")
    lines = [line.split("\t") for line in listed.splitlines()]
    assert [line[1] for line in lines] == ["npm-linux-2", "npm-linux-1"]  # most recent first
    assert lines[1][2] == "2.9 KiB" and lines[1][5] == MAIN and lines[1][6] == "acme/cli"
    deleted = cli(service, "delete", "--repository", "acme/cli", "--key", "npm-linux-1")
    assert "Deleted 1 cache entries" in deleted
    remaining = json.loads(cli(service, "list", "--json"))["entries"]
    assert [entry["key"] for entry in remaining] == ["npm-linux-2"]
    assert "Deleted 1 cache entry" in cli(service, "delete", str(remaining[0]["id"]))
    assert json.loads(cli(service, "list", "--json"))["total_count"] == 0
    assert "acme/cli" in json.loads(cli(service, "metrics"))["repositories"]


def test_a_wrong_token_is_an_error(service: CacheProcess) -> None:
    result = CliRunner().invoke(app, ["list", "--url", service.url, "--token", "wrong"])
    assert result.exit_code == 1 and "401" in result.output
