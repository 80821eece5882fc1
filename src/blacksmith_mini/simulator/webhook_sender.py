"""The simulated GitHub's webhook sender: signed ``workflow_job`` deliveries, with chaos.

Like GitHub it signs each delivery (``X-Hub-Signature-256``), gives it a GUID
(``X-GitHub-Delivery``), does not retry a failed one, and keeps a delivery log an App can
list and ask to redeliver. To prove the control plane does not depend on webhooks, it can
drop, duplicate and delay (hence reorder) deliveries at configured rates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from typing import Any

import httpx2

from blacksmith_mini.github import parse
from blacksmith_mini.simulator import formats, state

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Chaos:
    drop_ratio: float = 0.0
    duplicate_ratio: float = 0.0
    max_delay_seconds: float = 0.0  # each delivery waits uniform(0, this): reorders them
    seed: int | None = None


@dataclasses.dataclass
class DeliveryRecord:
    """One delivery attempt, in the shape of GitHub's hook delivery objects."""

    id: int
    guid: str
    delivered_at: float
    redelivery: bool
    status_code: int
    event: str
    action: str | None
    body: bytes = dataclasses.field(repr=False)

    def as_github(self) -> dict[str, Any]:
        ok = 200 <= self.status_code < 300
        return {
            "id": self.id,
            "guid": self.guid,
            "delivered_at": parse.iso(self.delivered_at),
            "redelivery": self.redelivery,
            "duration": 0.01,
            "status": "OK" if ok else f"Invalid HTTP Response: {self.status_code}",
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": 1,
            "repository_id": None,
            "throttled_at": None,
        }


class WebhookSender:
    def __init__(
        self,
        sim: state.SimState,
        *,
        url: str,
        secret: str,
        chaos: Chaos = Chaos(),
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.sim = sim
        self.url = url
        self.secret = secret
        self.chaos = chaos
        self.random = random.Random(chaos.seed)
        self.transport = transport
        self.log: list[DeliveryRecord] = []
        self._ids = 1
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx2.AsyncClient | None = None
        self.sent = self.dropped = self.duplicated = 0
        sim.listeners.append(self._on_change)

    def _client_for(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(transport=self.transport, timeout=10.0)
        return self._client

    def _on_change(self, change: state.Change) -> None:
        job = self.sim.jobs.get(change.job_id)
        repo = self.sim.repository(job.repository) if job is not None else None
        if job is None or repo is None:
            return
        group = self.sim.groups.get(job.runner_group_id or 1)
        payload = {
            "action": change.action,
            "workflow_job": formats.job(job, group.name if group else None),
            "repository": formats.repository(repo),
            "sender": {"login": "octocat", "id": 1, "type": "User"},
            "installation": {"id": 1},
        }
        body = json.dumps(payload).encode()
        guid = str(uuid.uuid4())
        if self.random.random() < self.chaos.drop_ratio:
            self.dropped += 1
            self._record(guid, change.action, body, status=504, redelivery=False)
            return
        copies = 2 if self.random.random() < self.chaos.duplicate_ratio else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            delay = self.random.uniform(0, self.chaos.max_delay_seconds)
            self._spawn(self._deliver(guid, change.action, body, delay=delay, redelivery=False))

    def _spawn(self, coroutine: Any) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to deliver to
            task = asyncio.get_running_loop().create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        coroutine.close()

    async def _deliver(
        self, guid: str, action: str | None, body: bytes, *, delay: float, redelivery: bool
    ) -> None:
        if delay:
            await asyncio.sleep(delay)
        signature = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/simulated",
            "x-github-event": "workflow_job",
            "x-github-delivery": guid,
            "x-github-hook-id": "1",
            "x-github-hook-installation-target-type": "integration",
            "x-github-hook-installation-target-id": "1",
            "x-hub-signature-256": signature,
        }
        try:
            response = await self._client_for().post(self.url, content=body, headers=headers)
            status = response.status_code
        except httpx2.HTTPError as exc:
            log.info("simulated webhook %s not delivered: %s", guid, exc)
            status = 502
        self.sent += 1
        self._record(guid, action, body, status=status, redelivery=redelivery)

    def _record(
        self, guid: str, action: str | None, body: bytes, *, status: int, redelivery: bool
    ) -> None:
        self.log.append(
            DeliveryRecord(
                id=self._ids,
                guid=guid,
                delivered_at=time.time(),
                redelivery=redelivery,
                status_code=status,
                event="workflow_job",
                action=action,
                body=body,
            )
        )
        self._ids += 1
        del self.log[:-5000]

    def redeliver(self, delivery_id: int) -> bool:
        """``POST /app/hook/deliveries/{id}/attempts``: send a logged delivery again."""
        found = next((d for d in self.log if d.id == delivery_id), None)
        if found is None:
            return False
        self._spawn(self._deliver(found.guid, found.action, found.body, delay=0.0, redelivery=True))
        return True

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
