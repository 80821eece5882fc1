"""No configured secret leaks: the real server (simulate mode) runs with a GitHub token, a
webhook secret, a read token and an admin token, runs jobs to completion, and then none of
those secrets appears in its log, in any API answer, in the database, in any file of the data
dir (VM dirs included, scanned while a VM runs) or in a VM process's command line or
environment. The JIT config is a credential too, but it legitimately goes to its VM.

Also: the access rules (401 without a token, 401 for a change with the read token, 403 for
changes when only a read token is configured) and ``doctor --simulate`` not printing the
token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pathlib
import secrets
import string
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx2
import pydantic
import pytest

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app
from server.harness import Server, kill_all, processes_under, wait_for

pytestmark = pytest.mark.slow
ALPHABET = string.ascii_letters + string.digits


def random_secret(prefix: str = "", length: int = 36) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def variants(secret: str) -> set[bytes]:
    """The secret as bytes, and base64-encoded at each of the three alignments (the middle
    part, which does not depend on what surrounds it)."""
    raw = secret.encode()
    found = {raw}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        found.add(encoded[4:-4])
    return found


class AuthServer(Server):
    """The harness' server, sending ``Authorization: Bearer <token>`` when given one."""

    token: str | None = None

    def send(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, raw, _ = self.send(method, path, body, token=self.token)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw


@pytest.fixture
def configured() -> dict[str, str]:
    return {
        "github_token": random_secret("ghp_"),
        "webhook_secret": random_secret("whsec"),
        "api_token": random_secret("read"),
        "admin_token": random_secret("admin"),
    }


@pytest.fixture
def server(tmp_path: pathlib.Path, configured: dict[str, str]) -> Iterator[AuthServer]:
    data_dir = tmp_path / "data"
    running = AuthServer(
        data_dir,
        GITHUB_TOKEN=configured["github_token"],
        BLACKSMITH_GITHUB__WEBHOOK_SECRET=configured["webhook_secret"],
        BLACKSMITH_SERVER__API_TOKEN=configured["api_token"],
        BLACKSMITH_SERVER__ADMIN_TOKEN=configured["admin_token"],
        BLACKSMITH_LOG_FORMAT="json",
        BLACKSMITH_LOG_LEVEL="debug",
        BLACKSMITH_GITHUB__POLL_INTERVAL_WITH_WEBHOOKS="2",
    )
    running.token = configured["admin_token"]
    running.start()
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.stop()
        kill_all(processes_under(data_dir))


def scan(blobs: dict[str, bytes], configured: dict[str, str]) -> list[str]:
    """``where: which secret`` for every blob that contains a configured secret."""
    found = []
    for where, blob in blobs.items():
        for name, secret in configured.items():
            if any(variant in blob for variant in variants(secret)):
                found.append(f"{where}: {name}")
    return found


def files_under(root: pathlib.Path) -> dict[str, bytes]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            try:
                found[str(path.relative_to(root))] = path.read_bytes()
            except OSError:  # removed meanwhile (a VM being reaped)
                continue
    return found


def vm_processes(data_dir: pathlib.Path) -> dict[str, bytes]:
    found = {}
    for pid in processes_under(data_dir):
        for part in ("cmdline", "environ"):
            try:
                found[f"/proc/{pid}/{part}"] = pathlib.Path(f"/proc/{pid}/{part}").read_bytes()
            except OSError:
                continue
    return found


def test_no_configured_secret_leaks(server: AuthServer, configured: dict[str, str]) -> None:
    read, admin = configured["api_token"], configured["admin_token"]
    # Some faults and refusals, so the log has errors to (not) leak through.
    assert server.send("POST", "/_sim/faults", {"server_errors": 2}, token=admin)[0] == 200
    assert server.send("GET", "/api/status", token="wrong-token")[0] == 401
    body = b'{"action": "queued"}'
    bad_signature = "sha256=" + hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()
    webhook = urllib.request.Request(
        server.url + "/api/webhooks/github",
        data=body,
        method="POST",
        headers={
            "x-hub-signature-256": bad_signature,
            "x-github-event": "workflow_job",
            "x-github-delivery": "1",
            "content-type": "application/json",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(webhook, timeout=5)
    assert refused.value.code == 401

    # An audited operator action, and the event stream authenticated by query parameter.
    for action in ("drain", "resume"):
        status, _, _ = server.send(
            "POST", f"/api/control/{action}", {"reason": "secrets test"}, token=admin
        )
        assert status == 200, action
    with urllib.request.urlopen(
        f"{server.url}/api/events?access_token={read}", timeout=10
    ) as stream:
        first = stream.readline() + stream.readline()
    assert first.strip(), "expected an event from the stream"

    quick = [server.queue(duration_seconds=0.3) for _ in range(3)]
    slow = server.queue(duration_seconds=30)
    wait_for(
        lambda: all(server.job(j)["status"] == "completed" for j in quick),
        timeout=40,
        what="the quick jobs to complete",
    )
    busy = wait_for(
        lambda: [v for v in server.get("/api/vms")[1]["vms"] if v["job_id"] == slow],
        timeout=20,
        what="the slow job's VM",
    )
    # While a VM runs: its dir, its processes' command lines and environments.
    blobs = {f"data/{k}": v for k, v in files_under(server.data_dir).items()}
    blobs.update(vm_processes(server.data_dir))
    assert any("/vms/" in key for key in blobs), "expected a running VM's files to scan"
    assert any(key.endswith("/environ") for key in blobs), "expected VM processes to scan"

    paths = [
        "/api/status",
        "/api/vms",
        "/api/vms?include_gone=true",
        "/api/jobs",
        "/api/history?window=1h",
        "/api/control",
        "/api/audit",
        "/api/health",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/api/no-such-route",
    ]
    vms = server.get("/api/vms?include_gone=true")[1]["vms"]
    assert len(vms) >= 4
    paths += [f"/api/vms/{vm['vm_id']}" for vm in vms]
    paths += [f"/api/jobs/{job_id}" for job_id in [*quick, slow]]
    for path in paths:
        for token in (read, admin):
            status, raw, headers = server.send("GET", path, token=token)
            assert status < 500, (path, status)
            blobs[f"GET {path} ({'admin' if token == admin else 'read'})"] = (
                raw + json.dumps(headers).encode()
            )
    consoles = [server.get(f"/api/vms/{vm['vm_id']}")[1]["console_tail"] for vm in vms]
    assert any("Listening for Jobs" in tail for tail in consoles), "expected console tails"
    assert busy

    server.stop()
    # After shutdown: the database (and its WAL) and the whole log.
    blobs.update({f"data/{k} (after stop)": v for k, v in files_under(server.data_dir).items()})
    assert any(key.endswith("blacksmith.db (after stop)") for key in blobs)
    log = server.log.read_bytes()
    assert b'"level"' in log, "expected JSON log lines"
    blobs["server log"] = log

    leaks = scan(blobs, configured)
    assert leaks == [], f"configured secrets found in: {leaks}"


def test_doctor_does_not_print_the_token(tmp_path: pathlib.Path) -> None:
    token = random_secret("ghp_")
    env = {**os.environ, "GITHUB_TOKEN": token, "BLACKSMITH_LOG_LEVEL": "debug"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "blacksmith_mini",
            "doctor",
            "--simulate",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output.decode(errors="replace")
    assert b"ok" in done.stdout
    assert not any(variant in output for variant in variants(token)), output


def test_access_rules_of_the_real_server(server: AuthServer, configured: dict[str, str]) -> None:
    read, admin = configured["api_token"], configured["admin_token"]
    job = {"duration_seconds": 0.1}
    assert server.send("GET", "/api/status")[0] == 401
    assert server.send("GET", "/metrics")[0] == 401
    assert server.send("GET", "/api/status", token=read)[0] == 200
    assert server.send("GET", "/api/status", token=admin)[0] == 200
    assert server.send("POST", "/api/simulator/jobs", job)[0] == 401
    assert server.send("POST", "/api/simulator/jobs", job, token=read)[0] == 401
    assert server.send("POST", "/_sim/faults", {}, token=read)[0] == 401
    assert server.send("POST", "/api/simulator/jobs", job, token=admin)[0] == 201
    assert server.send("GET", "/api/health")[0] == 200  # public, for probes


@pytest.mark.anyio
async def test_changes_are_refused_when_only_a_read_token_is_configured(
    tmp_path: pathlib.Path,
) -> None:
    read = random_secret("read")
    config = settings_mod.load(simulate=True, data_dir=tmp_path)
    config.simulator.rate_per_min = 0
    config.server.api_token = pydantic.SecretStr(read)
    app = create_app(config)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            headers = {"authorization": f"Bearer {read}"}
            assert (await client.get("/api/status")).status_code == 401
            assert (await client.get("/api/status", headers=headers)).status_code == 200
            for path, body in (
                ("/api/simulator/jobs", {"duration_seconds": 1}),
                ("/api/control/drain", {"reason": "test"}),
                ("/_sim/faults", {}),
            ):
                answer = await client.post(path, json=body, headers=headers)
                assert answer.status_code == 403, (path, answer.text)
                assert "admin_token" in answer.json()["detail"]
