"""Operator controls in a real browser against the real backend (simulate mode).

Covers: draining from the header (the banner shows, a job queued meanwhile waits with a
"draining" reason and gets its VM after Resume), pausing and resuming a pool from the pools
tile, changing a pool's warm minimum, stopping an idle VM, and stopping a busy VM (refused with
409, then forced). With tokens: a 401 on an action brings up the admin-token form, after which
the action goes through; with only a read token configured the page says changes are disabled.
"""

from __future__ import annotations

import json
import pathlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from .conftest import Backend, run_backend
from .test_dashboard import VM_ITEM, open_dashboard, queue_job, vm_of

pytestmark = pytest.mark.e2e

READ_TOKEN = "e2e-read-token"
ADMIN_TOKEN = "e2e-admin-token"
LONG_JOB_SECONDS = 600


def call(
    backend: Backend,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    """Any API call; answers (HTTP status, JSON body) instead of raising on 4xx."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{backend.url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def operator_backend(backend: Backend) -> Iterator[Backend]:
    """The module's backend, with every operator decision undone after each test."""
    status, body = call(backend, "GET", "/api/control")
    if status == 404:
        pytest.fail(
            "the backend does not serve the operator API (GET /api/control answered 404): "
            "blacksmith_mini/api/app.py must include routes.operator.router"
        )
    assert status == 200, body
    yield backend


@pytest.fixture
def server(operator_backend: Backend) -> Iterator[Backend]:
    yield operator_backend
    reset = {"reason": "e2e cleanup"}
    call(operator_backend, "POST", "/api/control/resume", reset)
    for pool in call(operator_backend, "GET", "/api/control")[1]["pools"]:
        call(operator_backend, "POST", f"/api/pools/{pool['name']}/resume", reset)
    call(operator_backend, "PATCH", "/api/pools/default", {**reset, "min_idle": 0})


def confirm(page: Page, test_id: str, button: str, *, reason: str, name: str = "") -> Locator:
    """Fills the open operator dialog and presses its confirm button; answers the dialog."""
    dialog = page.get_by_test_id(test_id)
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason (optional, recorded)").fill(reason)
    if name:
        dialog.get_by_label("Your name (optional, kept for this tab)").fill(name)
    dialog.get_by_role("button", name=button, exact=True).click()
    return dialog


def queued_job(backend: Backend, job_id: int) -> dict[str, Any] | None:
    jobs = backend.get("/api/status")["queued_jobs"]
    return next((job for job in jobs if job["id"] == job_id), None)


def pool_row(page: Page, name: str) -> Locator:
    return page.locator(f'[data-testid="pool-row"][data-pool="{name}"]')


def test_drain_shows_the_banner_holds_queued_jobs_and_resume_releases_them(
    page: Page, server: Backend, screenshots_dir: pathlib.Path
) -> None:
    open_dashboard(page, server)
    banner = page.get_by_test_id("draining-banner")
    expect(banner).to_have_count(0)
    toggle = page.get_by_test_id("drain-toggle")
    before = toggle.bounding_box()
    # Keyboard only: focus the toggle, open with Enter, the reason field has the focus.
    toggle.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_test_id("drain-dialog")
    expect(dialog).to_contain_text("Drain the control plane?")
    expect(dialog.get_by_label("Reason (optional, recorded)")).to_be_focused()
    page.keyboard.type("e2e: host maintenance")
    dialog.get_by_label("Your name (optional, kept for this tab)").fill("e2e-operator")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()

    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Draining: no new VMs")
    expect(toggle).to_have_text("Resume")
    assert toggle.bounding_box() == before  # the toggle does not move or resize
    assert server.get("/api/control")["draining"] is True
    expect(pool_row(page, "default")).to_be_visible()
    expect(page.get_by_test_id("pools-panel")).to_contain_text("draining")

    job_id = queue_job(server, duration=1)
    waiting = wait_for("the job to wait", lambda: queued_job(server, job_id))
    assert "draining" in (waiting["waiting_reason"] or ""), waiting
    assert server.get(f"/api/jobs/{job_id}")["vm_id"] is None
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots_dir / "draining.png"), full_page=False)

    toggle.click()
    confirm(page, "drain-dialog", "Resume", reason="e2e: maintenance done")
    expect(banner).to_be_hidden()
    expect(toggle).to_have_text("Drain")
    assert server.get("/api/control")["draining"] is False
    vm_of(server, job_id, timeout=15)


def test_pausing_a_pool_holds_its_jobs_until_resumed(page: Page, server: Backend) -> None:
    open_dashboard(page, server)
    row = pool_row(page, "large")
    expect(row).to_have_attribute("data-paused", "false")
    row.get_by_role("button", name="Pause pool large").click()
    confirm(page, "pool-pause-dialog", "Pause pool", reason="e2e: image rebuild")
    expect(row).to_have_attribute("data-paused", "true")
    expect(row.get_by_text("paused", exact=True)).to_be_visible()
    expect(page.get_by_test_id("pools-panel")).to_contain_text("1 paused")
    control = server.get("/api/control")
    assert control["paused_pools"] == ["large"]
    assert next(p for p in server.get("/api/status")["pools"] if p["name"] == "large")["paused"]

    job = server.post(
        "/api/simulator/jobs", {"labels": ["self-hosted", "large"], "duration_seconds": 1}
    )
    waiting = wait_for("the large job to wait", lambda: queued_job(server, int(job["id"])))
    assert waiting["waiting_reason"] == "pool 'large' is paused", waiting
    expect(row).to_contain_text("1 queued", timeout=5_000)

    row.get_by_role("button", name="Resume pool large").click()
    confirm(page, "pool-pause-dialog", "Resume pool", reason="e2e: done")
    expect(row).to_have_attribute("data-paused", "false")
    assert server.get("/api/control")["paused_pools"] == []
    vm_of(server, int(job["id"]), timeout=15)


def test_limits_editor_validates_and_an_idle_vm_can_be_stopped(page: Page, server: Backend) -> None:
    open_dashboard(page, server)
    row = pool_row(page, "default")
    row.get_by_role("button", name="Edit limits of pool default").click()
    dialog = page.get_by_test_id("pool-limits-dialog")
    min_idle = dialog.get_by_label("Warm minimum (min_idle)")
    max_vms = dialog.get_by_label("Maximum VMs (max_vms)")
    save = dialog.get_by_role("button", name="Save", exact=True)
    expect(min_idle).to_be_focused()
    expect(max_vms).to_have_value(str(server.get("/api/control")["pools"][0]["max_vms"]))
    min_idle.fill("999")
    expect(dialog).to_contain_text("Cannot exceed the maximum.")
    expect(save).to_be_disabled()
    min_idle.fill("1")
    expect(save).to_be_enabled()
    save.click()
    expect(dialog).to_be_hidden()
    expect(row).to_contain_text("min idle 1")
    default = next(p for p in server.get("/api/control")["pools"] if p["name"] == "default")
    assert default["min_idle"] == 1

    # A warm VM boots for the new minimum: stop it from its identity card.
    def idle_vm() -> int | None:
        vms = server.get("/api/status")["vms"]
        return next((vm["vm_id"] for vm in vms if vm["status"] == "idle"), None)

    vm_id = wait_for("a warm idle VM", idle_vm, timeout=20)
    page.locator(VM_ITEM.format(vm_id)).click()
    details = page.get_by_test_id("vm-details")
    expect(details).to_contain_text(f"VM {vm_id}")
    details.get_by_role("button", name="Stop VM").click()
    dialog = confirm(page, "stop-vm-dialog", "Stop VM", reason="e2e: recycle", name="e2e-operator")
    expect(dialog).to_be_hidden()
    wait_for(
        "the VM to stop",
        lambda: server.get(f"/api/vms/{vm_id}")["status"] in ("stopping", "gone"),
    )
    expect(page.locator(VM_ITEM.format(vm_id))).to_contain_text("gone", timeout=15_000)
    vm = server.get(f"/api/vms/{vm_id}")
    assert vm["death_reason"] == "stopped_by_operator", vm
    stops = [e for e in vm["events"] if e["kind"] == "operator.vm_stop"]
    assert stops and "e2e-operator" in stops[0]["message"], vm["events"]
    assert "e2e: recycle" in stops[0]["message"]


def test_stopping_a_busy_vm_is_refused_then_forced(page: Page, server: Backend) -> None:
    job_id = queue_job(server, duration=LONG_JOB_SECONDS)
    vm_id = vm_of(server, job_id)
    wait_for("the VM to run the job", lambda: server.get(f"/api/vms/{vm_id}")["status"] == "busy")
    open_dashboard(page, server)
    page.locator(VM_ITEM.format(vm_id)).click()
    details = page.get_by_test_id("vm-details")
    expect(details).to_contain_text(f"VM {vm_id}")
    details.get_by_role("button", name="Stop VM").click()
    dialog = confirm(page, "stop-vm-dialog", "Stop VM", reason="e2e: hung build")
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text(f"VM {vm_id} is running job {job_id}")
    expect(dialog.get_by_role("button", name="Stop VM", exact=True)).to_be_disabled()
    assert server.get(f"/api/vms/{vm_id}")["status"] == "busy"  # refused: nothing happened

    dialog.get_by_role("button", name="Stop anyway (job fails)").click()
    expect(dialog).to_be_hidden()
    wait_for(
        "the forced stop",
        lambda: server.get(f"/api/vms/{vm_id}")["status"] in ("stopping", "gone"),
    )
    expect(page.locator(VM_ITEM.format(vm_id))).to_contain_text("gone", timeout=15_000)
    stops = [
        e for e in server.get(f"/api/vms/{vm_id}")["events"] if e["kind"] == "operator.vm_stop"
    ]
    assert stops and "(forced)" in stops[0]["message"], stops


@pytest.fixture(scope="module")
def backend_with_admin(dashboard_build: None) -> Iterator[Backend]:
    yield from run_backend(
        {
            "BLACKSMITH_SERVER__API_TOKEN": READ_TOKEN,
            "BLACKSMITH_SERVER__ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )


@pytest.fixture(scope="module")
def backend_read_only(dashboard_build: None) -> Iterator[Backend]:
    yield from run_backend({"BLACKSMITH_SERVER__API_TOKEN": READ_TOKEN})


def enter_token(page: Page, title: str, token: str) -> None:
    token_dialog = page.get_by_role("dialog").filter(has_text=title)
    expect(token_dialog).to_be_visible(timeout=10_000)
    token_dialog.get_by_label("Token", exact=True).fill(token)
    token_dialog.get_by_role("button", name="Save token").click()
    expect(token_dialog).to_be_hidden()


def test_an_action_refused_with_401_asks_for_the_admin_token(
    page: Page, backend_with_admin: Backend
) -> None:
    drains: list[Request] = []
    page.on(
        "request",
        lambda r: drains.append(r) if r.url.endswith("/api/control/drain") else None,
    )
    page.goto(f"{backend_with_admin.url}/")
    enter_token(page, "API token required", READ_TOKEN)
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )
    page.get_by_test_id("drain-toggle").click()
    dialog = confirm(page, "drain-dialog", "Drain", reason="e2e: tokens", name="e2e-admin")
    # The token form comes up over the action's dialog, which then says what happened.
    enter_token(page, "Admin token required", ADMIN_TOKEN)
    expect(dialog.get_by_role("alert")).to_contain_text("needs the admin token")

    dialog.get_by_role("button", name="Drain", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("draining-banner")).to_be_visible()
    status, control = call(backend_with_admin, "GET", "/api/control", token=READ_TOKEN)
    assert status == 200 and control["draining"] is True
    last = drains[-1]
    assert last.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}"
    assert last.headers.get("x-blacksmith-actor") == "e2e-admin"
    stored = page.evaluate("() => window.sessionStorage.getItem('blacksmith-mini.actor')")
    assert stored == "e2e-admin"


def test_changes_disabled_without_an_admin_token(page: Page, backend_read_only: Backend) -> None:
    page.goto(f"{backend_read_only.url}/")
    enter_token(page, "API token required", READ_TOKEN)
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )
    row = pool_row(page, "default")
    row.get_by_role("button", name="Pause pool default").click()
    dialog = confirm(page, "pool-pause-dialog", "Pause pool", reason="e2e")
    expect(dialog.get_by_role("alert")).to_have_text(
        "operator actions are disabled on this server: set server.admin_token"
    )
    # No token form: a 403 is not a missing token.
    expect(page.get_by_role("dialog").filter(has_text="token required")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(row).to_have_attribute("data-paused", "false")
