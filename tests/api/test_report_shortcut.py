"""The report's shortcut beneath FastAPI (``api.report_shortcut``) answers as the route does.

The same requests go to two apps of one control plane: the app as built (the shortcut
answers the report) and the app without the shortcut (FastAPI routes it to the route). Each
answer (status, body, the ``www-authenticate`` header) is the same: a good report, a bad or
non-JSON body, no token, an unknown token, a replaced session, a body over the limit; and
what is not a POST of the report still reaches the app.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api import limits, report_shortcut
from blacksmith_mini.api.app import create_app

pytestmark = pytest.mark.anyio
REPORT = {"vcpus": 4, "memory_mib": 8192, "disk_mib": 10_000, "drivers": ["local"]}
SEEN = {"vm_id": 4242, "name": "bm-x-4242-abc", "alive": True, "started_at": 1.0}


@pytest.fixture
async def apps(tmp_path: pathlib.Path) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.vm.driver = "remote"
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        routed = FastAPI()  # the same app's routes and state, without the shortcut
        routed.router, routed.state = app.router, app.state
        for middleware in app.user_middleware:
            if middleware.cls is not report_shortcut.ReportShortcut:
                routed.user_middleware.append(middleware)
        routed.exception_handlers = app.exception_handlers
        yield app, routed


def client(app: FastAPI) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://cp")


async def connect(app: FastAPI) -> tuple[dict[str, str], int]:
    async with client(app) as http:
        made = await http.post("/api/hosts", json={"name": "h1"})
        auth = {"authorization": f"Bearer {made.json()['token']}"}
        hello = await http.post(
            "/api/agent/hello", json={"report": REPORT, "observations": [SEEN]}, headers=auth
        )
    return auth, int(hello.json()["session"])


async def answer(app: FastAPI, method: str, *, content: bytes, headers: dict[str, str]) -> Any:
    async with client(app) as http:
        found = await http.request(method, report_shortcut.PATH, content=content, headers=headers)
    return found.status_code, found.json(), found.headers.get("www-authenticate")


async def test_the_shortcut_answers_as_the_route_does(apps: tuple[FastAPI, FastAPI]) -> None:
    app, routed = apps
    auth, session = await connect(app)
    typed = {"content-type": "application/json"}
    cases = [
        ("POST", {"session": session, "observations": [SEEN]}, {**auth, **typed}),
        ("POST", {"session": session}, {**auth, **typed}),
        ("POST", {"session": session + 1}, {**auth, **typed}),  # replaced session: 409
        ("POST", {"session": "one"}, {**auth, **typed}),  # 422
        ("POST", b'{"session": ', {**auth, **typed}),  # not JSON: 422
        ("POST", {"session": session}, typed),  # no token: 401
        ("POST", {"session": session}, {"authorization": "Bearer bmh_nope", **typed}),
        ("GET", b"", auth),  # not a POST: the app's 405
    ]
    seen = []
    for method, body, headers in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        ours = await answer(app, method, content=content, headers=headers)
        theirs = await answer(routed, method, content=content, headers=headers)
        assert ours == theirs, (method, body)
        seen.append(ours[0])
    assert seen == [200, 200, 409, 422, 422, 401, 401, 405]


async def test_a_report_over_the_body_limit_is_413(apps: tuple[FastAPI, FastAPI]) -> None:
    app, _ = apps
    auth, session = await connect(app)
    padding = "x" * (limits.AGENT_BODY_BYTES + 1)
    content = json.dumps({"session": session, "pad": padding}).encode()

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(content), 1 << 20):
            yield content[start : start + (1 << 20)]

    async with client(app) as http:
        found = await http.post(report_shortcut.PATH, content=streamed(), headers=auth)
    assert found.status_code == 413 and "too large" in found.json()["detail"]
