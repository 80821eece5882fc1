"""The dashboard's "Actions cache" panel in a real browser against the real backend.

The default e2e server runs in simulate mode, where the cache is off (it is on by default only
with the firecracker driver): the panel shows the calm off state with the server's hint. A second
server turns it on (`BLACKSMITH_CACHE__ENABLED=true`, on a free port): no job has used it, so
the panel says it holds nothing yet.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from .conftest import Backend, run_backend

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def backend_with_cache(dashboard_build: None) -> Iterator[Backend]:
    yield from run_backend({"BLACKSMITH_CACHE__ENABLED": "true", "BLACKSMITH_CACHE__PORT": "0"})


def open_dashboard(page: Page, backend: Backend) -> None:
    page.goto(f"{backend.url}/")
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )


def test_cache_panel_shows_off_state_with_hint(page: Page, backend: Backend) -> None:
    open_dashboard(page, backend)
    panel = page.get_by_test_id("cache-panel")
    expect(panel.get_by_role("heading", name="Actions cache")).to_be_visible()
    off = panel.get_by_test_id("cache-off")
    expect(off).to_be_visible(timeout=10_000)
    expect(off).to_contain_text("The Actions cache is off on this server")
    expect(off).to_contain_text("BLACKSMITH_CACHE__ENABLED=true")
    expect(panel.get_by_role("alert")).to_have_count(0)


def test_cache_panel_shows_empty_state_when_on(page: Page, backend_with_cache: Backend) -> None:
    open_dashboard(page, backend_with_cache)
    panel = page.get_by_test_id("cache-panel")
    expect(panel.get_by_text("No cache entries yet")).to_be_visible(timeout=10_000)
    expect(panel.get_by_test_id("cache-summary")).to_contain_text("0 B of 100 GiB stored")
    expect(panel.get_by_test_id("cache-off")).to_have_count(0)
    expect(panel.get_by_role("alert")).to_have_count(0)
