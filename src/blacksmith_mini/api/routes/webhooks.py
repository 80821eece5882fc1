"""``POST /api/webhooks/github``: GitHub's ``workflow_job`` deliveries.

Verified (HMAC-SHA256 over the raw body, constant-time) before anything is parsed; a missing
or bad signature is 401, a missing event header, malformed or too deeply nested JSON 400, a
body over 5 MB 413. Other events (``installation``, ``installation_repositories``, ...) are
acknowledged with 200 and ignored, so GitHub never marks them failed or redelivers them.
A delivery is persisted before it is acknowledged with 202 and processed by the loop right
after, so an acknowledged delivery survives a crash. A repeated ``X-GitHub-Delivery`` is
acknowledged and ignored. The endpoint answers 404 until ``github.webhook_secret`` is set.
"""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.github import webhooks
from blacksmith_mini.store import notify

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)


@router.post(
    "/api/webhooks/github",
    status_code=202,
    response_model=schemas.WebhookAnswer,
    responses={
        200: {
            "model": schemas.WebhookAnswer,
            "description": "ping, a repeated delivery, or an event we ignore",
        },
        400: {"model": schemas.ErrorResponse},
        401: {"model": schemas.ErrorResponse},
        404: {"model": schemas.ErrorResponse},
        413: {"model": schemas.ErrorResponse},
    },
)
async def receive_github_webhook(runtime: RuntimeDep, request: Request) -> JSONResponse:
    """Receive one GitHub webhook delivery."""
    secret = runtime.webhook_secret  # webhook_secret or webhook_secret_file, resolved once
    if secret is None:
        return _answer(404, "webhooks are off: set github.webhook_secret (or webhook_secret_file)")
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > webhooks.MAX_BODY_BYTES:
        return _answer(413, "body too large (over 5 MB) or without a valid Content-Length")
    body = await request.body()
    if len(body) > webhooks.MAX_BODY_BYTES:
        return _answer(413, "body too large (over 5 MB)")
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        delivery = webhooks.verify(body=body, headers=headers, secret=secret)
    except webhooks.Rejected as exc:
        log.warning("webhook rejected (%d): %s", exc.status, exc)
        return _answer(exc.status, str(exc))
    if delivery.event == "ping":
        return _answer(200, "pong")
    if webhooks.ignored(delivery):
        log.info("webhook %s (%s) acknowledged and ignored", delivery.delivery_id, delivery.event)
        return _answer(200, f"event {delivery.event!r} acknowledged and ignored")
    fresh = await runtime.store.record_delivery(
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        action=delivery.action,
        payload=body.decode("utf-8"),  # the verified bytes as received; parsed once, later
        at=time.time(),
    )
    if not fresh:
        return _answer(200, f"delivery {delivery.delivery_id} already received; ignored")
    runtime.loop.deliveries_arrived()
    runtime.announce(notify.DELIVERIES)  # replicas: the leader may be another process
    return _answer(202, f"delivery {delivery.delivery_id} accepted")


def _answer(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)
