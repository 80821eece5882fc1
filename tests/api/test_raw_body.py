"""A body a hot route parses itself (``api.raw_body``) reads to its clients as FastAPI's own.

The same bad bodies sent to a route that declares ``wire.Report`` to FastAPI and to one that
parses it with ``raw_body.parsed`` give the same status and the same errors (type and place);
a body that is not JSON, or not even text, is the documented ``json_invalid`` 422, not a 500;
the OpenAPI document still describes the report's body and its 422.
"""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request

from blacksmith_mini.api import raw_body
from blacksmith_mini.vm.remote import wire

pytestmark = pytest.mark.anyio
SEEN = {"vm_id": 7, "name": "bm-x-7-abc", "alive": True, "started_at": 1.0}
BAD_BODIES = [
    {"observations": [SEEN]},  # no session
    {"session": "one"},
    {"session": 1, "observations": [{**SEEN, "vm_id": 0}]},
    {"session": 1, "observations": [{**SEEN, "name": "x" * 101}]},
    {"session": 1, "observations": [{**SEEN, "surprise": True}]},
    {"session": 1, "acks": [{"id": 1}]},
    {"session": 1, "extra": 1},
]


def apps() -> tuple[FastAPI, FastAPI]:
    declared, parsed = FastAPI(), FastAPI()

    @declared.post("/report")
    async def by_fastapi(body: wire.Report) -> dict[str, int]:
        return {"session": body.session}

    @parsed.post("/report", openapi_extra=raw_body.described(wire.Report))
    async def by_us(request: Request) -> dict[str, int]:
        body = raw_body.parsed(wire.Report, await request.body())
        return {"session": body.session}

    raw_body.document(parsed, [wire.Report])
    return declared, parsed


def errors(response: httpx2.Response) -> list[tuple[str, tuple[Any, ...]]]:
    return [(e["type"], tuple(e["loc"])) for e in response.json()["detail"]]


async def post(app: FastAPI, content: bytes) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(
            "/report", content=content, headers={"content-type": "application/json"}
        )


@pytest.mark.parametrize("body", BAD_BODIES, ids=lambda body: json.dumps(body)[:40])
async def test_a_bad_body_gets_the_errors_fastapi_gives(body: Any) -> None:
    declared, parsed = apps()
    content = json.dumps(body).encode()
    theirs, ours = await post(declared, content), await post(parsed, content)
    assert theirs.status_code == ours.status_code == 422
    assert errors(ours) == errors(theirs)
    assert all("url" not in error for error in ours.json()["detail"])


@pytest.mark.parametrize("content", [b'{"session": 1', b"", b"\xff\xfe{}", b"[" * 10_000])
async def test_a_body_that_is_not_json_is_the_documented_422(content: bytes) -> None:
    declared, parsed = apps()
    ours = await post(parsed, content)
    assert ours.status_code == 422, ours.text
    (error,) = ours.json()["detail"]
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"
    assert error["input"] == {}  # the bytes are not echoed back
    # FastAPI answers these 422 or (too deep, not text) 400, which the app answers as this 422
    assert (await post(declared, content)).status_code in (400, 422)


async def test_a_body_of_the_wrong_kind_is_422_at_the_body() -> None:
    _, parsed = apps()
    ours = await post(parsed, b"[]")
    assert ours.status_code == 422 and errors(ours) == [("model_type", ("body",))]


async def test_a_good_body_is_the_model() -> None:
    _, parsed = apps()
    good = await post(parsed, json.dumps({"session": 3, "observations": [SEEN]}).encode())
    assert good.status_code == 200 and good.json() == {"session": 3}


def test_the_document_describes_the_body_as_fastapi_would() -> None:
    declared, parsed = apps()
    theirs, ours = declared.openapi(), parsed.openapi()
    operation = ours["paths"]["/report"]["post"]
    assert operation["requestBody"] == theirs["paths"]["/report"]["post"]["requestBody"]
    assert operation["responses"]["422"] == theirs["paths"]["/report"]["post"]["responses"]["422"]
    assert ours["components"]["schemas"] == theirs["components"]["schemas"]
