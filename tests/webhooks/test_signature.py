"""Signature verification: GitHub's documented test vector, and every way a delivery is bad."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from blacksmith_mini.github import webhooks

SECRET = "It's a Secret to Everybody"
VECTOR = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def headers(signature: str | None, event: str = "workflow_job") -> dict[str, str]:
    found = {"x-github-event": event, "x-github-delivery": "d-1"}
    if signature is not None:
        found["x-hub-signature-256"] = signature
    return found


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_githubs_test_vector_passes_the_signature_check() -> None:
    assert sign(b"Hello, World!") == VECTOR
    # The signature is accepted; the body then fails only because it is not JSON.
    with pytest.raises(webhooks.Rejected, match="not JSON") as found:
        webhooks.verify(body=b"Hello, World!", headers=headers(VECTOR), secret=SECRET)
    assert found.value.status == 400


def test_wrong_secret_is_401() -> None:
    body = b'{"action": "queued"}'
    with pytest.raises(webhooks.Rejected, match="secret") as found:
        webhooks.verify(body=body, headers=headers(sign(body, "other")), secret=SECRET)
    assert found.value.status == 401


def test_modified_body_is_401() -> None:
    body = b'{"action": "queued"}'
    signature = sign(body)
    with pytest.raises(webhooks.Rejected) as found:
        webhooks.verify(body=b'{"action": "completed"}', headers=headers(signature), secret=SECRET)
    assert found.value.status == 401


def test_missing_header_is_401() -> None:
    with pytest.raises(webhooks.Rejected, match="missing X-Hub-Signature-256") as found:
        webhooks.verify(body=b"{}", headers=headers(None), secret=SECRET)
    assert found.value.status == 401


def test_sha1_only_is_refused() -> None:
    body = b"{}"
    legacy = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(webhooks.Rejected) as found:
        webhooks.verify(body=body, headers=headers(legacy), secret=SECRET)
    assert found.value.status == 401


def test_empty_event_is_400() -> None:
    body = b"{}"
    with pytest.raises(webhooks.Rejected) as found:
        webhooks.verify(body=body, headers=headers(sign(body), event=""), secret=SECRET)
    assert found.value.status == 400


def test_other_events_are_verified_then_ignored() -> None:
    body = b"{}"
    delivery = webhooks.verify(
        body=body, headers=headers(sign(body), event="installation"), secret=SECRET
    )
    assert webhooks.ignored(delivery)
    with pytest.raises(webhooks.Rejected):
        webhooks.verify(
            body=body, headers=headers("sha256=" + "0" * 64, event="push"), secret=SECRET
        )
