"""``GET /api/jobs/{id}`` explains a queued job while GitHub rate-limits us."""

from __future__ import annotations

import asyncio

import httpx2
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio


async def test_rate_limited_job_says_until_when(app: FastAPI, client: httpx2.AsyncClient) -> None:
    runtime = app.state.runtime
    for _ in range(100):  # let the first tick poll GitHub
        if runtime.loop.view.loop.ticks:
            break
        await asyncio.sleep(0.02)
    runtime.simulation.faults.rate_limits = 100
    runtime.simulation.faults.retry_after = 120
    queued = (await client.post("/api/simulator/jobs", json={"duration_seconds": 1})).json()
    runtime.loop.observer.wake()
    for _ in range(200):
        response = await client.get(f"/api/jobs/{queued['id']}")
        if response.status_code == 200 and "rate limit" in (
            response.json()["waiting_reason"] or ""
        ):
            break
        await asyncio.sleep(0.02)
    detail = response.json()
    assert detail["status"] == "queued"
    assert "GitHub rate limit" in detail["waiting_reason"] and "UTC" in detail["waiting_reason"]
    status = (await client.get("/api/status")).json()
    assert status["github"]["blocked_until"] is not None
    assert status["github"]["rate_limit_remaining"] == 0
