"""The API-token flow in a real browser: a 401 brings up the token form; once the token is
entered (kept in sessionStorage only), REST calls send it as a bearer header and the event
stream as `access_token`, and the page goes live."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Request, expect

from .conftest import API_TOKEN, Backend

pytestmark = pytest.mark.e2e


def test_token_form_appears_on_401_and_the_token_unlocks_the_api(
    page: Page, backend_with_token: Backend
) -> None:
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request) if "/api/" in request.url else None)
    page.goto(f"{backend_with_token.url}/")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("API token required", timeout=10_000)
    # A refused token is not an outage.
    expect(page.get_by_role("heading", name="API Connection Error")).to_have_count(0)

    dialog.get_by_label("Token", exact=True).fill(API_TOKEN)
    dialog.get_by_role("button", name="Save token").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )
    expect(page.get_by_test_id("stat-active-vms-value")).not_to_have_text("—")

    stored = page.evaluate("() => window.sessionStorage.getItem('blacksmith-mini.api-token')")
    assert stored == API_TOKEN
    assert page.evaluate("() => window.localStorage.length") == 0
    status_calls = [r for r in requests if r.url.endswith("/api/status")]
    assert any(r.headers.get("authorization") == f"Bearer {API_TOKEN}" for r in status_calls)
    assert any(f"/api/events?access_token={API_TOKEN}" in r.url for r in requests)
