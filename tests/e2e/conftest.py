"""Browser tests of the dashboard against the real backend (simulate mode).

They drive Debian's Chromium (`/usr/bin/chromium`; `npx playwright install` cannot download a
browser here) through pytest-playwright, and start `blacksmith-mini up --simulate` as a
subprocess on a free port with a temporary data dir. The whole folder is skipped when Chromium
is missing. Run: `uv run pytest -m e2e tests/e2e`.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
HERE = pathlib.Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"browser tests need Chromium at {CHROMIUM}: apt-get install -y chromium"
    )
    for item in items:
        if HERE in pathlib.Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Backend:
    """`blacksmith-mini up --simulate` in its own process group; stop and start it again."""

    def __init__(
        self,
        *,
        port: int,
        data_dir: pathlib.Path,
        log_path: pathlib.Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.env = env or {}
        self.data_dir = data_dir
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        # The console script of the venv pytest runs in, i.e. what `uv run blacksmith-mini` runs.
        script = pathlib.Path(sys.executable).parent / "blacksmith-mini"
        args = ["up", "--simulate", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if script.exists():
            return [str(script), *args]
        return ["uv", "run", "--frozen", "blacksmith-mini", *args]

    def start(self, timeout: float = 60.0) -> None:
        env = {
            **os.environ,
            "BLACKSMITH_SIMULATOR__RATE_PER_MIN": "0",
            "BLACKSMITH_SERVER__ON_SHUTDOWN": "drain",  # no VM outlives a test
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"backend exited with {code}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"backend did not answer /api/health in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result


@pytest.fixture(scope="session")
def dashboard_build() -> None:
    """The backend serves frontend/out/: build it (a no-op when it is up to date)."""
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-frontend.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        pytest.fail(f"building the dashboard failed:\n{output}")


API_TOKEN = "e2e-secret-token"


def run_backend(env: dict[str, str] | None = None) -> Iterator[Backend]:
    with tempfile.TemporaryDirectory(prefix="bsm-e2e-") as tmp:
        server = Backend(
            port=free_port(),
            data_dir=pathlib.Path(tmp) / "data",
            log_path=pathlib.Path(tmp) / "backend.log",
            env=env,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def backend(dashboard_build: None) -> Iterator[Backend]:
    yield from run_backend()


@pytest.fixture(scope="module")
def backend_with_token(dashboard_build: None) -> Iterator[Backend]:
    """A backend whose API needs `Authorization: Bearer API_TOKEN`."""
    yield from run_backend({"BLACKSMITH_SERVER__API_TOKEN": API_TOKEN})


@pytest.fixture(scope="session")
def screenshots_dir() -> pathlib.Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
