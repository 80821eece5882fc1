"""The Actions cache on an agent's host: the agent serves it to its own VMs, mints each VM's
token into its boot data, and asks the control plane what a token allows (the agent holds no
GitHub credential): a VM saves and restores in its job's scope, the bytes stay on that host,
and a token for a VM that is not on the host is refused with the reason."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sqlite3
import stat
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from blacksmith_mini.cache import tokens
from blacksmith_mini.cache.twirp import PREFIX
from hosts.harness import ControlPlane
from server.harness import wait_for

pytestmark = pytest.mark.slow
VERSION = "3ad75f27293d65a135214b8c82b296080f911dc107e52f1e7ec871a2eda46e69"
CACHE_ON = {"BLACKSMITH_AGENT_CACHE__ENABLED": "true", "BLACKSMITH_AGENT_CACHE__PORT": "0"}


@pytest.fixture
def plane(tmp_path: pathlib.Path) -> Iterator[ControlPlane]:
    found = ControlPlane(tmp_path / "control")
    try:
        yield found.start()
    finally:
        found.cleanup()


def twirp(guest: httpx2.Client, method: str, token: str, **body: Any) -> httpx2.Response:
    return guest.post(f"{PREFIX}/{method}", json=body, headers={"authorization": f"Bearer {token}"})


def test_a_hosts_cache_serves_its_vm_in_the_scope_the_control_plane_resolves(
    plane: ControlPlane,
) -> None:
    agent = plane.add_agent("h1", env=CACHE_ON)
    job_id = plane.queue(duration_seconds=120.0)
    row = wait_for(
        lambda: next((r for r in plane.vm_rows() if r["job_id"] == job_id), None),
        timeout=60,
        what="the job's VM to be linked",
    )
    assert row["host"] == "h1"
    boot_file = agent.data_dir / "vms" / row["name"] / "cache.json"
    boot = json.loads(boot_file.read_text())
    assert stat.S_IMODE(boot_file.stat().st_mode) == 0o600
    assert boot["url"].startswith("http://127.0.0.1:") and boot["token"].startswith("bmc1.")
    data = os.urandom(200_000)
    with httpx2.Client(base_url=boot["url"], timeout=60) as guest:
        created = twirp(guest, "CreateCacheEntry", boot["token"], key="deps", version=VERSION)
        assert created.status_code == 200 and created.json()["ok"], created.text
        put = guest.put(
            created.json()["signed_upload_url"],
            content=data,
            headers={"x-ms-blob-type": "BlockBlob"},
        )
        assert put.status_code == 201, put.text
        done = twirp(
            guest,
            "FinalizeCacheEntryUpload",
            boot["token"],
            key="deps",
            version=VERSION,
            size_bytes=str(len(data)),
        )
        assert done.json()["ok"], done.text
        found = twirp(guest, "GetCacheEntryDownloadURL", boot["token"], key="deps", version=VERSION)
        assert found.json()["ok"], found.text
        assert guest.get(found.json()["signed_download_url"]).content == data
        secret = (agent.data_dir / "cache-secret").read_bytes().strip()
        elsewhere = tokens.vm_token(secret, vm_id=row["vm_id"] + 1000, expires_at=2**31)
        refused = twirp(guest, "GetCacheEntryDownloadURL", elsewhere, key="deps", version=VERSION)
        assert refused.status_code == 401
        assert "not on host h1" in refused.json()["msg"]
    index = agent.data_dir / "cache" / "index.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        (entry,) = db.execute("SELECT repository, scope, state FROM entries").fetchall()
    assert entry == (plane.job(job_id)["repository"], "refs/heads/main", "committed")
    assert not (plane.data_dir / "cache").exists()  # the bytes stayed on the job's host
    log = agent.log.read_text(errors="replace")
    assert boot["token"] not in log and "bmc1." not in log
