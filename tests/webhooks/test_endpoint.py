"""The webhook endpoint with GitHub's own example payloads, signed with a test secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import pathlib
import uuid
from collections.abc import AsyncIterator

import httpx2
import pydantic
import pytest
from fastapi import FastAPI

import github_schema
from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app

pytestmark = pytest.mark.anyio
SECRET = "test-webhook-secret"
ORDER = {"queued": 0, "waiting": 1, "in_progress": 2, "completed": 3}


@pytest.fixture
async def app(tmp_path: pathlib.Path) -> AsyncIterator[FastAPI]:
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.simulator.webhooks = False
    settings.github.webhook_secret = pydantic.SecretStr(SECRET)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as found:
        yield found


async def deliver(
    client: httpx2.AsyncClient,
    payload: object,
    *,
    event: str = "workflow_job",
    delivery: str | None = None,
    secret: str = SECRET,
) -> httpx2.Response:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return await client.post(
        "/api/webhooks/github",
        content=body,
        headers={
            "content-type": "application/json",
            "x-github-event": event,
            "x-github-delivery": delivery or str(uuid.uuid4()),
            "x-hub-signature-256": signature,
        },
    )


async def processed(app: FastAPI) -> None:
    for _ in range(200):
        if not await app.state.runtime.store.pending_deliveries():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("deliveries were not processed")


async def job_state(client: httpx2.AsyncClient, job_id: int) -> dict[str, object] | None:
    for _ in range(100):
        response = await client.get(f"/api/jobs/{job_id}")
        if response.status_code == 200:
            return dict(response.json())
        await asyncio.sleep(0.02)
    return None


async def test_real_payloads_of_every_action_set_the_job_states(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    examples = sorted(
        github_schema.workflow_job_examples(),
        key=lambda item: (ORDER[item[1]["action"]], item[0]),
    )
    assert {payload["action"] for _, payload in examples} == set(ORDER)
    for _, payload in examples:
        assert (await deliver(client, payload)).status_code == 202
    await processed(app)
    codertocat = await job_state(client, 289782451)
    assert codertocat is not None
    assert (codertocat["status"], codertocat["conclusion"]) == ("completed", "failure")
    gpu = await job_state(client, 2832853555)
    assert gpu is not None and gpu["status"] == "in_progress"
    assert gpu["runner_name"] == "my runner"
    # queued with status "waiting" (environment protection): GitHub holds it; no demand.
    assert (await client.get("/api/jobs/12877621891")).status_code == 404


async def test_late_in_progress_never_undoes_completed(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    examples = dict(github_schema.workflow_job_examples())
    for name in ("completed-2", "in_progress-3", "queued-5"):
        await deliver(client, next(p for n, p in examples.items() if n.startswith(name)))
    await processed(app)
    state = await job_state(client, 289782451)
    assert state is not None and state["status"] == "completed"
    assert state["conclusion"] == "success"


async def test_replayed_delivery_is_acknowledged_and_ignored(client: httpx2.AsyncClient) -> None:
    queued = next(p for n, p in github_schema.workflow_job_examples() if n.startswith("queued-5"))
    first = await deliver(client, queued, delivery="same-guid")
    again = await deliver(client, queued, delivery="same-guid")
    assert (first.status_code, again.status_code) == (202, 200)
    assert "already received" in again.json()["detail"]


async def test_ping_is_answered(client: httpx2.AsyncClient) -> None:
    _, ping = github_schema.ping_examples()[0]
    response = await deliver(client, ping, event="ping")
    assert response.status_code == 200 and response.json()["detail"] == "pong"


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda h, b: (h | {"x-hub-signature-256": "sha256=" + "0" * 64}, b), 401),
        (lambda h, b: ({k: v for k, v in h.items() if k != "x-hub-signature-256"}, b), 401),
        (lambda h, b: (h, b + b" "), 401),
        (lambda h, b: (h | {"x-github-event": ""}, b), 400),
    ],
)
async def test_hostile_deliveries_are_rejected_without_side_effects(
    app: FastAPI,
    client: httpx2.AsyncClient,
    mutate,
    status: int,  # type: ignore[no-untyped-def]
) -> None:
    queued = next(p for n, p in github_schema.workflow_job_examples() if n.startswith("queued-5"))
    body = json.dumps(queued).encode()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "x-github-event": "workflow_job",
        "x-github-delivery": str(uuid.uuid4()),
        "x-hub-signature-256": signature,
    }
    headers, body = mutate(headers, body)
    response = await client.post("/api/webhooks/github", content=body, headers=headers)
    assert response.status_code == status
    assert await app.state.runtime.store.pending_deliveries() == []
    assert (await client.get("/api/jobs/289782451")).status_code == 404


async def test_oversized_and_malformed_bodies(client: httpx2.AsyncClient) -> None:
    big = await client.post(
        "/api/webhooks/github",
        content=b"x" * (5 * 1024 * 1024 + 1),
        headers={"x-github-event": "workflow_job", "x-github-delivery": "big"},
    )
    assert big.status_code == 413
    body = b"{not json"
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad = await client.post(
        "/api/webhooks/github",
        content=body,
        headers={
            "x-github-event": "workflow_job",
            "x-github-delivery": "bad",
            "x-hub-signature-256": signature,
        },
    )
    assert bad.status_code == 400


async def test_endpoint_is_off_without_a_secret(tmp_path: pathlib.Path) -> None:
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.simulator.webhooks = False
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx2.ASGITransport(app=application)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await deliver(client, {"action": "queued"})
    assert response.status_code == 404 and "webhook_secret" in response.json()["detail"]


async def test_wrong_content_type_is_rejected_without_side_effects(
    app: FastAPI, client: httpx2.AsyncClient
) -> None:
    # GitHub can be set to send application/x-www-form-urlencoded (payload=...); we take JSON.
    body = b"payload=%7B%22action%22%3A%22queued%22%7D"
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await client.post(
        "/api/webhooks/github",
        content=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-github-event": "workflow_job",
            "x-github-delivery": "form-1",
            "x-hub-signature-256": signature,
        },
    )
    assert response.status_code == 400 and "JSON" in response.json()["detail"]
    assert await app.state.runtime.store.pending_deliveries() == []


@pytest.mark.parametrize("event", ["installation", "installation_repositories", "push"])
async def test_other_events_are_acknowledged_and_ignored(
    app: FastAPI, client: httpx2.AsyncClient, event: str
) -> None:
    # A GitHub App is subscribed to installation events whether it wants them or not; a 4xx
    # would mark each delivery failed, and redelivery would send it again after every restart.
    payload = {"action": "created", "installation": {"id": 1}, "sender": {"login": "octocat"}}
    response = await deliver(client, payload, event=event)
    assert 200 <= response.status_code < 300
    assert "ignored" in response.json()["detail"]
    assert await app.state.runtime.store.pending_deliveries() == []


async def test_deeply_nested_body_is_400_not_500(client: httpx2.AsyncClient) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await client.post(
        "/api/webhooks/github",
        content=body,
        headers={
            "content-type": "application/json",
            "x-github-event": "workflow_job",
            "x-github-delivery": "deep-1",
            "x-hub-signature-256": signature,
        },
    )
    assert response.status_code == 400 and "nested" in response.json()["detail"]


async def test_moderately_nested_object_is_400(client: httpx2.AsyncClient) -> None:
    payload: object = {"action": "queued"}
    for _ in range(500):
        payload = {"x": payload}
    response = await deliver(client, payload)
    assert response.status_code == 400 and "nested" in response.json()["detail"]
