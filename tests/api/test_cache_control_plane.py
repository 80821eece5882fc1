"""The control plane serves the Actions cache on one box: its own VM-facing listener, a token
per VM in the boot data naming only the VM, the claim resolved from the job the loop linked
to that VM (repository and scopes read from GitHub, the simulator here), the admin routes
under /api/cache behind the API's access control, and counters in /metrics. GitHub's own
client (``@actions/cache``, both protocols) saves and restores through that listener with
the URL and token a VM's boot data carries."""

from __future__ import annotations

import asyncio
import os
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import uvicorn
from fastapi import FastAPI

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app
from cache import v2_calls
from cache.node_support import NODE, Job, digests, ensure_node_modules
from server.harness import free_port, kill_all, processes_under

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cached(tmp_path: pathlib.Path) -> AsyncIterator[FastAPI]:
    """A served app (the simulated runners reach its broker over HTTP) with the cache on."""
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.server.port = free_port()
    settings.cache.enabled = True
    settings.cache.port = 0
    settings.cache.link_wait_seconds = 1.0
    settings.server.on_shutdown = "drain"
    application = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(
            application, host="127.0.0.1", port=settings.server.port, log_level="warning"
        )
    )
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: _true(server.started))
    try:
        yield application
    finally:
        server.should_exit = True
        await serving
        kill_all(processes_under(tmp_path))


async def _true(value: bool) -> bool:
    return value


async def eventually(probe: Any, *, timeout: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def _vm_with_a_job(api: httpx2.AsyncClient) -> dict[str, Any]:
    """A simulated job queued, and the VM the loop linked it to."""
    queued = await api.post("/api/simulator/jobs", json={"duration_seconds": 60})
    assert queued.status_code == 201
    job_id = queued.json()["id"]

    async def linked() -> Any:
        vms = (await api.get("/api/vms")).json()["vms"]
        return next((vm for vm in vms if vm.get("job_id") == job_id), None)

    found: dict[str, Any] = await eventually(linked)
    return found


async def test_a_vm_saves_and_restores_in_its_jobs_scope(cached: FastAPI) -> None:
    runtime = cached.state.runtime
    assert runtime.cache is not None and runtime.cache.port
    api = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=cached), base_url="http://t")
    vm = await _vm_with_a_job(api)
    boot = runtime.cache.boot_data(int(vm["vm_id"]))
    assert boot["url"] == f"http://127.0.0.1:{runtime.cache.port}/"
    assert boot["token"].startswith("bmc1.") and boot["fallback_url"].startswith("https://")
    data = os.urandom(300_000)
    async with httpx2.AsyncClient(base_url=boot["url"]) as guest:
        done = await v2_calls.save(guest, boot["token"], "deps", data)
        assert done.json()["ok"], done.text
        assert await v2_calls.restore(guest, boot["token"], "de", "de") == data
        stranger = runtime.cache.boot_data(999_999)["token"]  # no such VM
        refused = await v2_calls.twirp(
            guest, "GetCacheEntryDownloadURL", stranger, key="deps", version=v2_calls.VERSION
        )
        assert refused.status_code == 401 and "not running" in refused.json()["msg"]

    listed = (await api.get("/api/cache/entries")).json()
    (entry,) = listed["entries"]
    assert entry["repository"] == vm["scope"] and entry["ref"] == "refs/heads/main"
    assert entry["size_in_bytes"] == len(data)
    metrics = (await api.get("/api/cache/metrics")).json()
    assert metrics["enabled"] is True and metrics["detail"] is None
    counters = metrics["repositories"][entry["repository"]]
    assert counters["saves"] == 1 and counters["hits"] == 1
    assert metrics["entry_counts"] == {entry["repository"]: 1}
    exposition = (await api.get("/metrics")).text
    assert f'blacksmith_cache_saves_total{{repository="{entry["repository"]}"}} 1.0' in exposition
    assert "bmc1." not in exposition
    assert (await api.delete(f"/api/cache/entries/{entry['id']}")).status_code == 204
    assert (await api.get("/api/cache/entries")).json()["total_count"] == 0
    await api.aclose()


@pytest.mark.skipif(NODE is None, reason="node is not installed: @actions/cache needs Node 20+")
@pytest.mark.parametrize("protocol", ["v2", "v1"])
async def test_githubs_own_client_through_the_control_planes_listener(
    cached: FastAPI, tmp_path: pathlib.Path, protocol: str
) -> None:
    """``saveCache`` / ``restoreCache`` of the pinned client, run as a step of the VM's job
    would run them: the boot data's URL and token, nothing minted by the test."""
    await asyncio.to_thread(ensure_node_modules)
    runtime = cached.state.runtime
    assert runtime.cache is not None
    api = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=cached), base_url="http://t")
    vm = await _vm_with_a_job(api)
    boot = runtime.cache.boot_data(int(vm["vm_id"]))
    step = Job(service=None, protocol=protocol, root=tmp_path, given=(boot["url"], boot["token"]))
    tree = {"blob.bin": os.urandom(1_500_000), "nested/notes.txt": b"kept as it was\n" * 40}
    # The client blocks; the served app runs on this event loop, so it runs in a thread.
    saved = await asyncio.to_thread(step.save, f"{protocol}-deps-1", tree)
    assert isinstance(saved.value, int) and saved.value > 0, saved.output
    restored, found = await asyncio.to_thread(step.restore, f"{protocol}-x", f"{protocol}-deps-")
    assert restored.value == f"{protocol}-deps-1", restored.output
    assert found == digests(tree)
    foreign = runtime.cache.boot_data(999_999)["token"]  # no such VM
    stranger = Job(
        service=None, protocol=protocol, root=tmp_path / "stranger", given=(boot["url"], foreign)
    )
    refused, nothing = await asyncio.to_thread(stranger.restore, f"{protocol}-deps-1")
    assert refused.value is None and nothing == {}, refused.output
    (entry,) = (await api.get("/api/cache/entries")).json()["entries"]
    assert entry["repository"] == vm["scope"] and entry["ref"] == "refs/heads/main"
    assert entry["key"] == f"{protocol}-deps-1"
    await api.aclose()


async def test_the_cache_off_says_how_to_turn_it_on(client: httpx2.AsyncClient) -> None:
    metrics = await client.get("/api/cache/metrics")
    assert metrics.status_code == 200 and metrics.json()["enabled"] is False
    assert "BLACKSMITH_CACHE__ENABLED=true" in metrics.json()["detail"]
    answer = await client.get("/api/cache/entries")
    assert answer.status_code == 404
    assert "BLACKSMITH_CACHE__ENABLED=true" in answer.json()["detail"]


async def test_a_taken_port_fails_start_up_by_name(tmp_path: pathlib.Path) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.cache.enabled = True
    settings.cache.port = holder.getsockname()[1]
    application = create_app(settings)
    with pytest.raises(OSError, match="BLACKSMITH_CACHE__PORT"):
        async with application.router.lifespan_context(application):
            pass
    holder.close()
