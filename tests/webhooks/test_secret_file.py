"""``github.webhook_secret_file`` works like ``webhook_secret`` (the endpoint once read only the
latter and answered 404 "webhooks are off" with a secret file configured)."""

from __future__ import annotations

import pathlib

import httpx2
import pytest

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app
from webhooks.test_endpoint import deliver

pytestmark = pytest.mark.anyio


async def test_a_secret_file_turns_webhooks_on(tmp_path: pathlib.Path) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text("from-a-file\n")
    settings = settings_mod.load(simulate=True, data_dir=tmp_path)
    settings.simulator.rate_per_min = 0
    settings.simulator.webhooks = False
    settings.github.webhook_secret_file = secret_file
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://t") as client:
            ok = await deliver(
                client, {"zen": "hi", "hook_id": 1}, event="ping", secret="from-a-file"
            )
            wrong = await deliver(client, {"zen": "hi", "hook_id": 1}, event="ping", secret="x")
    assert ok.status_code < 300, ok.text
    assert wrong.status_code == 401, wrong.text
