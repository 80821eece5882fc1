"""An app on the embedded defaults (simulated GitHub, local driver, SQLite in tmp), driven
in-process through httpx2's ASGI transport with its lifespan running; ``remote``: the same
with ``vm.driver = "remote"`` (host agents), its client carrying the app."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

import httpx2
import pytest
from fastapi import FastAPI

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app


@pytest.fixture
async def app(tmp_path: pathlib.Path) -> AsyncIterator[FastAPI]:
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as found:
        yield found


@pytest.fixture
async def remote(tmp_path: pathlib.Path) -> AsyncIterator[httpx2.AsyncClient]:
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.vm.driver = "remote"
    application: FastAPI = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx2.ASGITransport(app=application)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            client.app = application  # type: ignore[attr-defined]
            yield client
