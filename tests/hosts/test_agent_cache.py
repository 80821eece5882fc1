"""The Actions cache on an agent's host: the agent serves it to its own VMs, mints each VM's
token into its boot data, and asks the control plane what a token allows (the agent holds no
GitHub credential): a VM saves and restores in its job's scope, the bytes stay on that host,
and a token for a VM that is not on the host is refused with the reason."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat

import anyio
import httpx2
import pytest

from blacksmith_mini.cache import tokens
from cache import v2_calls
from hosts.harness import ControlPlane
from server.harness import wait_for

pytestmark = pytest.mark.slow
CACHE_ON = {"BLACKSMITH_AGENT_CACHE__ENABLED": "true", "BLACKSMITH_AGENT_CACHE__PORT": "0"}


async def _save_restore_and_refuse(
    boot: dict[str, str], data: bytes, elsewhere: str
) -> httpx2.Response:
    """The VM's calls: save, restore byte-identical; then a foreign VM's token's answer."""
    async with httpx2.AsyncClient(base_url=boot["url"], timeout=60) as guest:
        done = await v2_calls.save(guest, boot["token"], "deps", data)
        assert done.json()["ok"], done.text
        assert await v2_calls.restore(guest, boot["token"], "deps") == data
        return await v2_calls.twirp(
            guest, "GetCacheEntryDownloadURL", elsewhere, key="deps", version=v2_calls.VERSION
        )


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
    secret = (agent.data_dir / "cache-secret").read_bytes().strip()
    elsewhere = tokens.vm_token(secret, vm_id=row["vm_id"] + 1000, expires_at=2**31)
    refused = anyio.run(_save_restore_and_refuse, boot, data, elsewhere)
    assert refused.status_code == 401
    assert "not on host h1" in refused.json()["msg"]
    index = agent.data_dir / "cache" / "index.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{index}?mode=ro", uri=True)) as db:
        (entry,) = db.execute("SELECT repository, scope, state FROM entries").fetchall()
    assert entry == (plane.job(job_id)["repository"], "refs/heads/main", "committed")
    assert not (plane.data_dir / "cache").exists()  # the bytes stayed on the job's host
    log = agent.log.read_text(errors="replace")
    assert boot["token"] not in log and "bmc1." not in log
