"""The hosts panel in a real browser against a control plane with two real agents.

A control plane in multi-host mode (``vm.driver = "remote"``, simulated GitHub, a 4 s lease)
and two ``blacksmith-mini agent`` processes (``tests/hosts/harness.py``). The panel lists both
hosts as up; cordoning one from the dashboard shows it cordoned, uncordoning shows it up again;
a job's VM shows the host it ran on; draining the other shows it draining; and after its agent
is SIGKILLed the panel shows that host down, with its reason, once the lease has lapsed.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from hosts.harness import LEASE_SECONDS, ControlPlane
from server.harness import wait_for

pytestmark = pytest.mark.e2e

# The panel refreshes every 3 s (HOSTS_REFRESH_MS); a change shows within one refresh.
REFRESH_SECONDS = 3
# A killed agent's host is down once the lease lapses, then within a loop tick and a refresh.
DOWN_WITHIN_MS = (LEASE_SECONDS + REFRESH_SECONDS + 8) * 1_000


@pytest.fixture
def plane(dashboard_build: None, tmp_path: pathlib.Path) -> Iterator[ControlPlane]:
    """A control plane in remote mode with the agents of h1 and h2 up."""
    found = ControlPlane(tmp_path / "control")
    try:
        found.start()
        found.add_agent("h1", vcpus=8, memory_mib=16_384)
        found.add_agent("h2", vcpus=8, memory_mib=16_384)
        yield found
    finally:
        found.cleanup()


def open_dashboard(page: Page, plane: ControlPlane) -> None:
    page.goto(f"{plane.url}/")
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )


def host_row(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="host-row"][data-host="{name}"]')


def act_on_host(page: Page, name: str, action: str, *, reason: str) -> None:
    """Presses the row's button for ``action`` ("Cordon", ...) and confirms it with ``reason``."""
    host_row(page, name).get_by_role("button", name=f"{action} host {name}").click()
    dialog = page.get_by_test_id("host-action-dialog")
    expect(dialog).to_contain_text(f"{action} host {name}?")
    dialog.get_by_label("Reason (optional, recorded)").fill(reason)
    dialog.get_by_role("button", name=action, exact=True).click()
    expect(dialog).to_be_hidden()


def test_hosts_panel_lists_cordons_drains_and_shows_a_lost_host_down(
    page: Page, plane: ControlPlane
) -> None:
    open_dashboard(page, plane)
    panel = page.get_by_test_id("hosts-panel")
    expect(panel.get_by_test_id("host-row")).to_have_count(2)
    for name in ("h1", "h2"):
        row = host_row(page, name)
        expect(row.get_by_test_id("host-state")).to_have_text("up")
        expect(row.get_by_test_id("host-vcpus")).to_contain_text("/8 vCPUs")
        expect(row.get_by_test_id("host-memory")).to_contain_text("/16 GiB")
    expect(page.get_by_test_id("hosts-summary")).to_contain_text("2 hosts · 2 up")

    # Cordon h1 from the dashboard, then uncordon it.
    h1 = host_row(page, "h1")
    act_on_host(page, "h1", "Cordon", reason="e2e: kernel update")
    expect(h1.get_by_test_id("host-state")).to_have_text("cordoned")
    assert plane.hosts()["h1"]["admin_state"] == "cordoned"
    act_on_host(page, "h1", "Uncordon", reason="e2e: done")
    expect(h1.get_by_test_id("host-state")).to_have_text("up")
    assert plane.hosts()["h1"]["admin_state"] == "up"

    # A job's VM says which host it ran on.
    job_id = plane.queue(duration_seconds=1.0)
    vm_id = wait_for(lambda: plane.job(job_id)["vm_id"], timeout=30, what="the job's VM")
    host = wait_for(
        lambda: plane.get(f"/api/vms/{vm_id}")[1]["host"], timeout=10, what="the VM's host"
    )
    assert host in ("h1", "h2")
    wait_for(
        lambda: plane.get(f"/api/vms/{vm_id}")[1]["status"] == "gone",
        timeout=30,
        what="the job's VM to be gone",
    )
    # Loaded afresh, the VM list holds it among the recently gone, whatever the stream sent.
    open_dashboard(page, plane)
    item = page.locator(f'[data-testid="vm-list-item"][data-vm-id="{vm_id}"]')
    expect(item).to_contain_text(f"· {host}", timeout=10_000)
    item.click()
    expect(page.get_by_test_id("vm-host")).to_have_text(host)

    # Drain h2: it takes no new VMs and empties.
    act_on_host(page, "h2", "Drain", reason="e2e: retire")
    h2 = host_row(page, "h2")
    expect(h2.get_by_test_id("host-state")).to_have_text("draining")
    expect(h2.get_by_role("button", name="Uncordon host h2")).to_be_visible()
    assert plane.hosts()["h2"]["admin_state"] == "draining"

    # SIGKILL h1's agent: once its lease lapses the panel shows it down, with the reason.
    plane.agents["h1"].kill()
    expect(h1.get_by_test_id("host-state")).to_have_text("down", timeout=DOWN_WITHIN_MS)
    expect(h1.get_by_test_id("host-down-reason")).to_contain_text(
        "no heartbeat", timeout=DOWN_WITHIN_MS
    )
    expect(h1.get_by_test_id("host-down-reason")).to_contain_text("since")
    expect(h2.get_by_test_id("host-state")).to_have_text("draining")
    assert plane.hosts()["h1"]["state"] == "down"
