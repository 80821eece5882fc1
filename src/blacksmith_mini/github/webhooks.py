"""GitHub webhook deliveries: signature verification and ``workflow_job`` parsing.

Rules (``../shared/reference/github.md`` §2): HMAC-SHA256 of the raw body with the secret,
``sha256=<hex>`` in ``X-Hub-Signature-256``, compared in constant time, before the JSON is
parsed. The legacy SHA-1 header is not accepted. Events other than ``workflow_job`` and
``ping`` (a GitHub App receives ``installation`` and ``installation_repositories`` whether it
asked or not) are verified, then acknowledged and ignored: a 4xx would mark them failed and
redelivery would send them again. A body nested deeper than ``MAX_DEPTH`` is refused.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import gidgethub
from gidgethub import sansio

from blacksmith_mini.domain import model
from blacksmith_mini.github import parse

ACCEPTED_EVENTS = frozenset({"workflow_job", "ping"})
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_DEPTH = 64  # GitHub's payloads nest about 6 levels


class Rejected(Exception):
    """A delivery we refuse; ``status`` is the HTTP answer, the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True, kw_only=True)
class Delivery:
    delivery_id: str
    event: str
    action: str | None
    payload: dict[str, Any]


def verify(*, body: bytes, headers: dict[str, str], secret: str) -> Delivery:
    """Check a delivery's signature and headers; return it parsed, or raise ``Rejected``."""
    signature = headers.get("x-hub-signature-256")
    if not signature:
        raise Rejected(401, "missing X-Hub-Signature-256 header: is the webhook secret set?")
    if not signature.startswith("sha256="):
        raise Rejected(401, "X-Hub-Signature-256 must start with 'sha256='")
    try:
        sansio.validate_event(body, signature=signature, secret=secret)
    except gidgethub.ValidationFailure as exc:
        raise Rejected(
            401, "signature does not match: the webhook secret differs from ours"
        ) from exc
    event = headers.get("x-github-event", "").strip()
    if not event:
        raise Rejected(400, "missing X-GitHub-Event header")
    delivery_id = headers.get("x-github-delivery", "").strip()
    if not delivery_id or len(delivery_id) > 64:
        raise Rejected(400, "missing or malformed X-GitHub-Delivery header")
    if event not in ACCEPTED_EVENTS:
        return Delivery(delivery_id=delivery_id, event=event, action=None, payload={})
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Rejected(400, f"body is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise Rejected(400, f"body is nested too deeply (limit {MAX_DEPTH} levels)") from exc
    if not isinstance(payload, dict):
        raise Rejected(400, "body must be a JSON object")
    if _depth(payload) > MAX_DEPTH:
        raise Rejected(400, f"body is nested too deeply (limit {MAX_DEPTH} levels)")
    action = payload.get("action")
    return Delivery(
        delivery_id=delivery_id,
        event=event,
        action=action if isinstance(action, str) else None,
        payload=payload,
    )


def ignored(delivery: Delivery) -> bool:
    """True for a verified delivery of an event we acknowledge without processing."""
    return delivery.event not in ACCEPTED_EVENTS


def _depth(value: Any) -> int:
    """How deeply JSON containers nest in ``value`` (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def workflow_job(payload: dict[str, Any]) -> model.Job | None:
    """The job a ``workflow_job`` payload describes, or None when it carries no runnable job.

    ``action`` and ``workflow_job.status`` can disagree (``queued`` with status ``waiting``);
    the status decides, since it is what GitHub will do with the job.
    """
    raw = payload.get("workflow_job")
    repository = payload.get("repository")
    if not isinstance(raw, dict) or not isinstance(repository, dict):
        raise ValueError("workflow_job payload lacks 'workflow_job' or 'repository'")
    full_name = repository.get("full_name")
    if not isinstance(full_name, str) or "/" not in full_name:
        raise ValueError("workflow_job payload has no repository.full_name")
    return parse.WorkflowJob.model_validate(raw).to_domain(full_name)
