"""The dashboard in a real browser against the real backend in simulate mode.

Covers: a clean page load, queueing a job through the simulator control (the job and its VM
show up within 2 s), VM selection, the job details panel, and the "API Connection Error" state
while the backend is down, with recovery after a restart on the same port and data dir. Saves
the screenshots in docs/screenshots/.
"""

from __future__ import annotations

import pathlib
import re
import time
import urllib.error

import pytest
from playwright.sync_api import ConsoleMessage, Page, Route, expect

from .conftest import Backend

pytestmark = pytest.mark.e2e

JOB_ROW = '[data-testid="timeline-job"][data-job-id="{}"]'
VM_ITEM = '[data-testid="vm-list-item"][data-vm-id="{}"]'


def open_dashboard(page: Page, backend: Backend) -> None:
    page.goto(f"{backend.url}/")
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )


def queue_job(backend: Backend, *, duration: float, conclusion: str = "success") -> int:
    job = backend.post(
        "/api/simulator/jobs", {"duration_seconds": duration, "conclusion": conclusion}
    )
    return int(job["id"])


def vm_of(backend: Backend, job_id: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            vm_id = backend.get(f"/api/jobs/{job_id}").get("vm_id")
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404: the loop has not picked the job up from GitHub yet
                raise
            vm_id = None
        if vm_id is not None:
            return int(vm_id)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} got no VM in {timeout}s")


def test_page_loads_without_console_errors(page: Page, backend: Backend) -> None:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"{message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    open_dashboard(page, backend)
    expect(page.get_by_role("heading", name="Blacksmith Mini")).to_be_visible()
    expect(page.get_by_test_id("system-overview")).to_be_visible()
    expect(page.get_by_test_id("history-charts")).to_be_visible()
    page.wait_for_timeout(1500)
    assert problems == []


def boxes(page: Page, test_ids: list[str]) -> dict[str, tuple[float, float]]:
    """Top and height of each element, by test id."""
    found: dict[str, tuple[float, float]] = {}
    for test_id in test_ids:
        box = page.get_by_test_id(test_id).bounding_box()
        assert box is not None, test_id
        found[test_id] = (round(box["y"]), round(box["height"]))
    return found


def test_no_layout_jump_when_data_arrives(page: Page, backend: Backend) -> None:
    held: list[Route] = []
    released = False

    def hold(route: Route) -> None:
        if released:
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/**", hold)  # hold every API call: the page shows its skeletons
    page.goto(f"{backend.url}/")
    expect(page.get_by_test_id("system-overview-skeleton")).to_be_visible()
    expect(page.get_by_test_id("timeline-skeleton")).to_be_visible()
    widgets = ["job-runs-timeline", "vm-identity", "history-charts"]
    before = boxes(page, ["system-overview-skeleton", *widgets])

    released = True
    for route in held:
        route.continue_()
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=15_000
    )
    expect(page.get_by_test_id("system-overview")).to_be_visible()
    page.wait_for_timeout(500)
    after = boxes(page, ["system-overview", *widgets])
    before["system-overview"] = before.pop("system-overview-skeleton")
    assert after == before


def test_simulated_job_and_its_vm_appear_within_two_seconds(page: Page, backend: Backend) -> None:
    open_dashboard(page, backend)
    # Keyboard only: focus the control and open it with Enter.
    page.get_by_role("button", name="Queue a job").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Labels (comma separated)")).to_be_focused()
    dialog.get_by_label("Duration (seconds)").fill("60")
    dialog.get_by_label("Conclusion").select_option("success")
    started = time.monotonic()
    dialog.get_by_role("button", name="Queue job").click()

    note = page.get_by_text(re.compile(r"^Queued job #\d+$"))
    expect(note).to_be_visible(timeout=2_000)
    match = re.search(r"#(\d+)", note.inner_text())
    assert match is not None
    job_id = int(match.group(1))

    row = page.locator(JOB_ROW.format(job_id))
    expect(row).to_be_visible(timeout=2_000)
    expect(row).to_contain_text(re.compile(r"VM \d+"), timeout=2_000)
    vm_match = re.search(r"VM (\d+)", row.inner_text())
    assert vm_match is not None
    expect(page.locator(VM_ITEM.format(vm_match.group(1)))).to_be_visible(timeout=2_000)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"job and VM took {elapsed:.2f}s to show"


def test_selecting_a_vm_shows_its_details(
    page: Page, backend: Backend, screenshots_dir: pathlib.Path
) -> None:
    # Two VMs so that selecting one is a real choice.
    first = vm_of(backend, queue_job(backend, duration=90))
    second = vm_of(backend, queue_job(backend, duration=90))
    open_dashboard(page, backend)
    for vm_id in (first, second):
        page.locator(VM_ITEM.format(vm_id)).click()
        expect(page.locator(VM_ITEM.format(vm_id))).to_have_attribute("aria-pressed", "true")
        details = page.get_by_test_id("vm-details")
        expect(details).to_contain_text(f"VM {vm_id}")
        vm = backend.get(f"/api/vms/{vm_id}")
        expect(details).to_contain_text(vm["name"])
        if vm["ip"]:
            expect(details).to_contain_text(vm["ip"])
        expect(details).to_contain_text(vm["pool"])
    console = page.get_by_test_id("vm-console")
    expect(console).not_to_have_text("(no console output yet)", timeout=5_000)
    assert f"vm={second}" in page.url
    page.wait_for_timeout(500)
    page.screenshot(path=str(screenshots_dir / "vm-details.png"), full_page=True)


def test_job_details_open_from_the_timeline(
    page: Page, backend: Backend, screenshots_dir: pathlib.Path
) -> None:
    job_id = queue_job(backend, duration=1, conclusion="failure")
    vm_of(backend, job_id)
    open_dashboard(page, backend)
    row = page.locator(JOB_ROW.format(job_id))
    expect(row).to_contain_text("failure", timeout=10_000)
    row.click()
    panel = page.get_by_test_id("job-details")
    expect(panel).to_be_visible()
    job = backend.get(f"/api/jobs/{job_id}")
    expect(panel).to_contain_text(job["repository"])
    run_link = panel.get_by_role("link", name=re.compile(r"^Run #"))
    expect(run_link).to_have_attribute(
        "href", f"https://github.com/{job['repository']}/actions/runs/{job['run_id']}"
    )
    expect(panel.get_by_role("link", name="Job on GitHub")).to_have_attribute(
        "href", re.compile(rf"/job/{job_id}$")
    )
    expect(panel.get_by_test_id("job-stage-durations")).to_contain_text("VM booting")
    expect(panel).to_contain_text(f"VM {job['vm_id']}")
    expect(panel).to_contain_text("failure")
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots_dir / "job-details.png"), full_page=False)
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    assert "job=" not in page.url


def test_overview_screenshot(page: Page, backend: Backend, screenshots_dir: pathlib.Path) -> None:
    mix = [(2, "success"), (3, "success"), (2, "timed_out"), (4, "cancelled")]
    ids = [queue_job(backend, duration=d, conclusion=c) for d, c in mix]
    backend.post("/api/simulator/jobs", {"labels": ["gpu"], "duration_seconds": 5})
    open_dashboard(page, backend)
    # The backend is shared: earlier tests' long jobs may hold VMs, so these can wait for a
    # free one first. Wait for each row's own conclusion (the legend says "cancelled" too).
    for job_id, (_, conclusion) in zip(ids, mix, strict=True):
        row = page.locator(JOB_ROW.format(job_id))
        expect(row).to_contain_text(conclusion, timeout=60_000)
    timeline = page.get_by_test_id("job-runs-timeline")
    expect(timeline).to_contain_text("timed_out")
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(screenshots_dir / "overview.png"), full_page=True)


def test_backend_down_shows_connection_error_and_recovers(
    page: Page, backend: Backend, screenshots_dir: pathlib.Path
) -> None:
    open_dashboard(page, backend)
    backend.stop()
    heading = page.get_by_role("heading", name="API Connection Error")
    expect(heading).to_be_visible(timeout=15_000)
    expect(page.get_by_test_id("last-fresh")).to_contain_text("Last fresh data")
    expect(page.get_by_test_id("api-connection-error")).to_contain_text(
        "uv run blacksmith-mini up --simulate"
    )
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute("data-mode", "offline")
    # The page stays up with the last data it had.
    expect(page.get_by_test_id("system-overview")).to_be_visible()
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots_dir / "connection-error.png"), full_page=False)

    backend.start()
    expect(heading).to_be_hidden(timeout=20_000)
    expect(page.get_by_test_id("connection-indicator")).to_have_attribute(
        "data-mode", "live", timeout=20_000
    )
