"""The HTTP API: the seed's contract kept, errors in JSON, CORS, validation."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio

SEED_VM_FIELDS = {
    "vm_id": int, "ip": (str, type(None)), "status": str, "pid": (int, type(None)),
    "start_time": int, "uptime_seconds": int,
}  # fmt: skip
SEED_METRICS = (
    "spawn_rate_per_min",
    "death_rate_per_min",
    "pool_saturation_percent",
    "success_rate_percent",
)


async def wait_status(client: httpx2.AsyncClient, check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        body = (await client.get("/api/status")).json()
        if check(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"status never satisfied the check: {body}")


async def test_status_keeps_every_seed_field_with_its_type(client: httpx2.AsyncClient) -> None:
    queued = await client.post("/api/simulator/jobs", json={"duration_seconds": 30})
    assert queued.status_code == 201
    body = await wait_status(client, lambda b: b["vms"])
    assert isinstance(body["timestamp"], str) and body["timestamp"].endswith("Z")
    for key in ("active_vms_count", "max_vms", "queued_jobs_count"):
        assert isinstance(body[key], int)
    assert isinstance(body["queued_jobs"], list)
    for vm in body["vms"]:
        for key, kind in SEED_VM_FIELDS.items():
            assert isinstance(vm[key], kind), (key, vm[key])
    assert set(SEED_METRICS) <= set(body["metrics"])
    assert body["metrics"]["success_rate_percent"] is None  # no completed job: no number
    assert body["metrics"]["pool_saturation_percent"] == 20.0


async def test_vms_and_health(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/api/vms")).json() == {"vms": []}
    health = await client.get("/api/health")
    assert health.status_code == 200
    assert health.json()["database"] == "sqlite"


async def test_health_is_503_when_the_loop_is_stuck(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    loop = app.state.runtime.loop
    loop._task.cancel()
    await asyncio.sleep(0.05)
    health = await client.get("/api/health")
    assert health.status_code == 503 and health.json()["status"] == "stuck"


async def test_unknown_api_path_is_json_404(client: httpx2.AsyncClient) -> None:
    response = await client.get("/api/nope", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert response.json() == {"detail": "no API route /api/nope"}


async def test_docs_and_openapi_ids(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    ids = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"status-get_status", "vms-list_vms", "jobs-get_job", "simulator-queue_job"} <= ids


async def test_cors_allows_the_dev_dashboard_only(client: httpx2.AsyncClient) -> None:
    headers = {"origin": "http://localhost:3000", "access-control-request-method": "GET"}
    allowed = await client.options("/api/status", headers=headers)
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
    other = await client.options("/api/status", headers={**headers, "origin": "http://evil.test"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"conclusion": "maybe"}, "conclusion"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"colour": "red"}, "colour"),
        ({"labels": "self-hosted"}, "labels"),
    ],
)
async def test_simulator_request_errors_name_the_field(
    client: httpx2.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/simulator/jobs", json=body)
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


async def test_unknown_job_and_vm_are_404(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/api/jobs/12345")).status_code == 404
    assert (await client.get("/api/vms/12345")).status_code == 404


async def test_history_windows(client: httpx2.AsyncClient) -> None:
    await wait_status(client, lambda b: b["loop"]["ticks"] >= 1)
    for window in ("1h", "24h", "7d"):
        body = (await client.get(f"/api/history?window={window}")).json()
        assert body["window"] == window and body["points"]  # the first sample is taken at once
    assert (await client.get("/api/history?window=2h")).status_code == 422


async def test_dashboard_is_served_once_built(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pathlib

    from blacksmith_mini import settings as settings_mod
    from blacksmith_mini.api.app import create_app

    out = pathlib.Path(tmp_path) / "out"
    settings = settings_mod.load(simulate=True, data_dir=pathlib.Path(tmp_path) / "d")
    settings.server.dashboard_dir = out
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            assert "not built yet" in (await client.get("/")).text
            out.mkdir()
            (out / "index.html").write_text("<h1>dashboard</h1>")
            (out / "404.html").write_text("missing")
            assert (await client.get("/")).text == "<h1>dashboard</h1>"
            assert (await client.get("/nope/")).status_code == 404
            assert (await client.get("/../../etc/passwd")).status_code == 404
            assert (await client.get("/api/nope")).json() == {"detail": "no API route /api/nope"}


async def test_two_apps_in_one_process_do_not_share_their_status(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pathlib

    from blacksmith_mini import settings as settings_mod
    from blacksmith_mini.api.app import create_app

    bodies = []
    for name, max_vms in (("a", 3), ("b", 7)):
        settings = settings_mod.load(simulate=True, data_dir=pathlib.Path(tmp_path) / name)
        settings.simulator.rate_per_min = 0
        settings.vm.max_vms = max_vms
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
                bodies.append((await client.get("/api/status")).json()["max_vms"])
    assert bodies == [3, 7]
