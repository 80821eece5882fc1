"""Start ``blacksmith-mini up --simulate`` as a real process and talk to it over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(
        self, data_dir: pathlib.Path, *, port: int | None = None, **env: str | None
    ) -> None:
        """``env`` overrides settings; a value of None removes the variable (so the setting's
        own default applies). Tests stop their servers draining unless they say otherwise,
        so no VM outlives a test."""
        self.data_dir = data_dir
        self.port = port or free_port()
        merged: dict[str, str | None] = {
            **os.environ,
            "BLACKSMITH_SIMULATOR__RATE_PER_MIN": "0",
            "BLACKSMITH_GITHUB__POLL_INTERVAL": "1",
            "BLACKSMITH_SERVER__ON_SHUTDOWN": "drain",
            **env,
        }
        self.env = {key: value for key, value in merged.items() if value is not None}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / f"server-{self.port}.log"
        self.headers: dict[str, str] = {}  # sent with every request (e.g. a token)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """The server's argv (subclasses wrap it, e.g. in ``ip netns exec``)."""
        return [
            sys.executable,
            "-m",
            "blacksmith_mini",
            "up",
            "--simulate",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]

    def start(self, timeout: float = 30.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command(), stdout=output, stderr=subprocess.STDOUT, env=self.env
            )
        try:
            wait_for(
                lambda: (
                    self.process is not None
                    and self.process.poll() is None
                    and self.get("/api/health")[0] == 200
                ),
                timeout=timeout,
                what=f"server on {self.port} to answer (log: {self.log})",
            )
        except AssertionError as exc:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}\n--- server log ---\n{tail}") from exc
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> float:
        """Stop the server; return how long it took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout=timeout)
        return time.monotonic() - started

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json", **self.headers}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None
        except OSError:
            return 0, None

    def queue(self, **body: Any) -> int:
        status, answer = self.request("POST", "/api/simulator/jobs", body)
        assert status == 201, answer
        return int(answer["id"])

    def job(self, job_id: int) -> dict[str, Any]:
        status, answer = self.get(f"/api/jobs/{job_id}")
        assert status == 200, answer
        return dict(answer)


def wait_for(check: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            result = check()
            if result:
                return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sim_state(data_dir: pathlib.Path, *, timeout: float = 10.0) -> dict[str, Any]:
    """The simulated GitHub's state as its server last persisted it under ``data_dir`` (read
    again while it is being rewritten; an unreadable state fails the test rather than passing
    for "no jobs, no runners")."""
    path = data_dir / "simulated-github.json"
    found = wait_for(lambda: json.loads(path.read_text()), timeout=timeout, what=f"{path}")
    return dict(found)


def processes_under(data_dir: pathlib.Path) -> list[int]:
    """Pids whose command line or working directory lies in ``data_dir/vms`` (our VMs)."""
    marker = str((data_dir / "vms").resolve())
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if "blacksmith_mini" in cmdline and (marker in cmdline or cwd.startswith(marker)):
            found.append(int(entry.name))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
