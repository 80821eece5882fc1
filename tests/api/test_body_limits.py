"""Body limits hold for chunked requests too (no ``Content-Length`` to check)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

pytestmark = pytest.mark.anyio


def chunked(total: int) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        sent = 0
        while sent < total:
            piece = min(64 * 1024, total - sent)
            sent += piece
            yield b" " * piece

    return chunks()


async def test_a_chunked_body_over_the_api_limit_is_refused(client: httpx2.AsyncClient) -> None:
    answer = await client.post(
        "/api/control/drain",
        content=chunked(2 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 413 and "1 MB" in answer.json()["detail"], answer.text


async def test_a_chunked_webhook_over_its_limit_is_refused(client: httpx2.AsyncClient) -> None:
    answer = await client.post(
        "/api/webhooks/github",
        content=chunked(6 * 1024 * 1024),
        headers={"content-type": "application/json", "x-github-event": "workflow_job"},
    )
    assert answer.status_code == 413 and "5 MB" in answer.json()["detail"]


async def test_a_small_chunked_body_is_read_as_usual(client: httpx2.AsyncClient) -> None:
    async def small() -> AsyncIterator[bytes]:
        yield b'{"reason": "chunked"}'

    answer = await client.post(
        "/api/control/drain", content=small(), headers={"content-type": "application/json"}
    )
    assert answer.status_code < 300, answer.text
