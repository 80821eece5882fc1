"""Test support for the guest side (stdlib only: the container helper runs it outside the venv).

- :class:`MmdsV2`: a tiny MMDS V2 server (``PUT /latest/api/token``, then ``GET
  /latest/meta-data/...`` with ``X-metadata-token``), whose :meth:`MmdsV2.wipe` removes the JIT
  config as the driver does after the agent's acknowledgement.
- :func:`jit_config`: a JIT config shaped like GitHub's (base64 JSON of base64 files).
- :func:`stand_in_run_sh`: the runner's ``run.sh`` stand-in: prints the real runner's console
  lines and records who it ran as (``id``), its hostname, its arguments and environment, in
  files next to itself (relative paths: it needs nothing outside its directory).
- :func:`ensure_runner_user`: an unprivileged user with a ``docker`` group, as in the image.
"""

from __future__ import annotations

import base64
import copy
import http.server
import json
import pwd
import secrets
import subprocess
import threading
import time
from typing import Any

ACK = "blacksmith-agent: boot-data-read"
RUNNER_LINES = (
    "\u221a Connected to GitHub",
    "Listening for Jobs",
    "Running job: build",
    "Job build completed with result: Succeeded",
)


def b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def jit_config(name: str, *, server_url: str = "http://127.0.0.1:9/broker") -> str:
    return b64(
        {
            ".runner": b64({"agentId": 7, "agentName": name, "serverUrl": server_url}),
            ".credentials": b64({"scheme": "OAuthAccessToken"}),
            ".credentials_rsaparams": b64({"d": f"private-{name}"}),
        }
    )


def stand_in_run_sh() -> str:
    """POSIX sh (dash in the image). Records to ./id, ./groups, ./hostname, ./args, ./env."""
    lines = "\n".join(f'echo "{line}"' for line in RUNNER_LINES)
    return (
        "#!/bin/sh\n"
        "id -u > ./id\n"
        "id -G > ./groups\n"
        "uname -n > ./hostname\n"
        'printf "%s\\n" "$@" > ./args\n'
        "env > ./env\n"
        f"{lines}\n"
        "exit 0\n"
    )


def ensure_runner_user(name: str = "bmrunner") -> pwd.struct_passwd:
    """Create (if missing) an unprivileged user in a ``docker`` group on this machine (root)."""
    if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "-f", "docker"], capture_output=True, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-G", "docker", name],
            capture_output=True,
            check=False,
        )
    return pwd.getpwnam(name)


class MmdsV2:
    """MMDS V2 on ``host:port`` (0: any free port), serving ``{"latest": {"meta-data":
    {"blacksmith": data}}}``; records every path asked for in ``requests``."""

    def __init__(self, data: dict[str, Any], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store: dict[str, Any] = {"latest": {"meta-data": {"blacksmith": copy.deepcopy(data)}}}
        self.tokens: dict[str, float] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer((host, port), self._handler())
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> MmdsV2:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wipe(self) -> None:
        with self.lock:
            self.store["latest"]["meta-data"]["blacksmith"].pop("runner_jit_config", None)

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        mmds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: str, *, kind: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ttl = self.headers.get("X-metadata-token-ttl-seconds", "")
                if self.path != "/latest/api/token" or not ttl.isdigit():
                    return self._send(400, "Token time to live value not found.")
                token = secrets.token_urlsafe(16)
                mmds.tokens[token] = time.monotonic() + int(ttl)
                self._send(200, token)

            def do_GET(self) -> None:
                mmds.requests.append(self.path)
                if mmds.tokens.get(self.headers.get("X-metadata-token", ""), 0) < time.monotonic():
                    return self._send(401, "MMDS token not valid.")
                with mmds.lock:
                    value: Any = mmds.store
                    for part in [p for p in self.path.split("/") if p]:
                        if not isinstance(value, dict) or part not in value:
                            return self._send(404, f"Resource not found: {self.path}.")
                        value = value[part]
                    body = json.dumps(value)
                self._send(200, body, kind="application/json")

        return Handler


def relay_console(
    process: subprocess.Popen[bytes], *, mmds: MmdsV2, sink: list[str], deadline: float
) -> int:
    """Read the agent's console until it exits, wiping MMDS at the ack (as the driver does);
    kill it at ``deadline`` (monotonic). Returns its exit code."""
    assert process.stdout is not None
    stdout = process.stdout

    def read() -> None:
        for raw in stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            sink.append(line)
            if line == ACK:
                mmds.wipe()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    reader.join(timeout=5)
    return code
