"""``GET /api/usage`` and ``GET /api/usage.csv``: grouping, cost, totals, CSV, validation."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io

import httpx2
import pytest
from fastapi import FastAPI

from blacksmith_mini.domain import model
from blacksmith_mini.runtime import Runtime
from blacksmith_mini.store import usage
from domain import builders

pytestmark = pytest.mark.anyio

DAY = 86400.0
T1 = float(usage.day_start(datetime.date(2024, 6, 10)))
RANGE = "since=2024-06-10&until=2024-06-11"


async def add_vm(
    runtime: Runtime,
    *,
    start: float,
    end: float,
    scope: str = "acme/app",
    job_id: int | None = None,
) -> None:
    store = runtime.store
    made = await store.create_vm(pool=builders.LARGE, scope=scope, prefix="bm", now=start)
    await store.save_vm(
        dataclasses.replace(
            made, state=model.VmState.GONE, state_since=end, ended_at=end, job_id=job_id
        )
    )


@pytest.fixture
async def runtime(app: FastAPI) -> Runtime:
    """The app's runtime with two days of usage in June 2024 and 2 per vCPU-hour.

    acme/app CI: 1 h on day 1 and 0.5 h on day 2 (across midnight); acme/infra Deploy: 2 h on
    day 2; a warm VM of org:acme: 0.5 h on day 1. Every VM has 8 vCPUs."""
    found: Runtime = app.state.runtime
    found.settings.usage.cost_per_vcpu_hour = 2.0
    ci = dataclasses.replace(builders.job(41, repository="acme/app"), workflow_name="CI")
    deploy = dataclasses.replace(builders.job(42, repository="acme/infra"), workflow_name="Deploy")
    await found.store.save_jobs([ci, deploy])
    await add_vm(found, start=T1 + DAY - 3600, end=T1 + DAY + 1800, job_id=41)
    await add_vm(found, start=T1 + DAY + 3600, end=T1 + DAY + 3 * 3600, job_id=42)
    await add_vm(found, start=T1 + 600, end=T1 + 2400, scope="org:acme")
    return found


async def test_usage_rows_per_day_repository_and_workflow(
    client: httpx2.AsyncClient, runtime: Runtime
) -> None:
    body = (await client.get(f"/api/usage?{RANGE}")).json()
    assert body["since"] == "2024-06-10" and body["until"] == "2024-06-11"
    assert body["group_by"] is None and body["cost_per_vcpu_hour"] == 2.0
    rows = [(r["day"], r["repository"], r["workflow"], r["vm_seconds"]) for r in body["rows"]]
    assert rows == [
        ("2024-06-10", "acme/app", "CI", 3600.0),
        ("2024-06-10", "org:acme", "(idle)", 1800.0),
        ("2024-06-11", "acme/app", "CI", 1800.0),
        ("2024-06-11", "acme/infra", "Deploy", 7200.0),
    ]
    assert body["rows"][0]["vcpu_seconds"] == 8 * 3600.0
    assert body["rows"][0]["cost"] == pytest.approx(16.0)  # 8 vCPU-hours at 2
    assert body["totals"] == {
        "vm_seconds": 14400.0,
        "vcpu_seconds": 8 * 14400.0,
        "cost": pytest.approx(64.0),
    }


async def test_usage_grouped(client: httpx2.AsyncClient, runtime: Runtime) -> None:
    by_repo = (await client.get(f"/api/usage?{RANGE}&group_by=repository")).json()["rows"]
    assert [(r["repository"], r["vm_seconds"], r["day"], r["workflow"]) for r in by_repo] == [
        ("acme/infra", 7200.0, None, None),  # biggest first
        ("acme/app", 5400.0, None, None),
        ("org:acme", 1800.0, None, None),
    ]
    by_workflow = (await client.get(f"/api/usage?{RANGE}&group_by=workflow")).json()["rows"]
    assert [(r["repository"], r["workflow"]) for r in by_workflow] == [
        ("acme/infra", "Deploy"),
        ("acme/app", "CI"),
        ("org:acme", "(idle)"),
    ]
    by_day = (await client.get(f"/api/usage?{RANGE}&group_by=day")).json()["rows"]
    assert [(r["day"], r["vm_seconds"], r["repository"]) for r in by_day] == [
        ("2024-06-10", 5400.0, None),
        ("2024-06-11", 9000.0, None),
    ]


async def test_usage_range_and_defaults(client: httpx2.AsyncClient, runtime: Runtime) -> None:
    one_day = (await client.get("/api/usage?since=2024-06-11&until=2024-06-11")).json()
    assert {r["day"] for r in one_day["rows"]} == {"2024-06-11"}
    inverted = (await client.get("/api/usage?since=2024-06-11&until=2024-06-10")).json()
    assert inverted["rows"] == [] and inverted["totals"]["vm_seconds"] == 0
    default = (await client.get("/api/usage")).json()
    today = datetime.datetime.now(datetime.UTC).date()
    assert default["until"] == today.isoformat()
    assert default["since"] == (today - datetime.timedelta(days=6)).isoformat()
    assert all(r["day"] >= default["since"] for r in default["rows"])
    widest = await client.get("/api/usage?since=0001-01-01&until=9999-12-31&group_by=day")
    assert widest.status_code == 200
    assert [r["day"] for r in widest.json()["rows"]][:2] == ["2024-06-10", "2024-06-11"]


async def test_usage_csv(client: httpx2.AsyncClient, runtime: Runtime) -> None:
    response = await client.get(f"/api/usage.csv?{RANGE}&group_by=repository")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "usage-2024-06-10-2024-06-11.csv" in response.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(response.text)))
    assert lines[0] == ["day", "repository", "workflow", "vm_seconds", "vcpu_seconds", "cost"]
    assert lines[1] == ["", "acme/infra", "", "7200.0", "57600.0", "32.0"]
    assert len(lines) == 4
    detail = list(csv.reader(io.StringIO((await client.get(f"/api/usage.csv?{RANGE}")).text)))
    assert detail[1][:3] == ["2024-06-10", "acme/app", "CI"]


async def test_usage_csv_never_writes_a_formula(
    client: httpx2.AsyncClient, runtime: Runtime
) -> None:
    evil = dataclasses.replace(
        builders.job(43, repository="acme/app"), workflow_name="=HYPERLINK()"
    )
    await runtime.store.save_jobs([evil])
    await add_vm(runtime, start=T1 + 10, end=T1 + 20, job_id=43)
    text = (await client.get(f"/api/usage.csv?{RANGE}")).text
    assert "'=HYPERLINK()" in text and ",=HYPERLINK" not in text


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2024-13-01", "since"),
        ("since=0", "since"),
        ("until=2024-06-10T00:00:00", "until"),
        ("until=yesterday", "until"),
        ("group_by=pool", "group_by"),
    ],
)
async def test_usage_rejects_bad_parameters(
    client: httpx2.AsyncClient, query: str, field: str
) -> None:
    for path in ("/api/usage", "/api/usage.csv"):
        response = await client.get(f"{path}?{query}")
        assert response.status_code == 422, (path, query)
        detail = response.json()["detail"]
        assert detail[0]["loc"] == ["query", field]


async def test_usage_operation_ids(client: httpx2.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["paths"]["/api/usage"]["get"]["operationId"] == "usage-get"
    assert document["paths"]["/api/usage.csv"]["get"]["operationId"] == "usage-csv"
