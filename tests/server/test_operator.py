"""Operator actions through the API and the CLI against a real server: who, why, refusals,
persistence across a restart, and the access tokens."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from server.harness import Server, kill_all, processes_under, wait_for

pytestmark = pytest.mark.slow
ADMIN = "admin-token-for-tests"
READ = "read-token-for-tests"


def call(
    server: Server, method: str, path: str, body: object = None, token: str | None = ADMIN
) -> tuple[int, object]:
    import json
    import urllib.error

    request = urllib.request.Request(
        server.url + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "content-type": "application/json",
            "x-blacksmith-actor": "alice",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "blacksmith_mini",
            *args,
            "--url",
            server.url,
            "--token",
            ADMIN,
            "--actor",
            "bob",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_operator_actions_are_audited_refused_when_unsafe_and_survive_restart(
    tmp_path: pathlib.Path,
) -> None:
    data_dir = tmp_path / "data"
    env = {"BLACKSMITH_SERVER__ADMIN_TOKEN": ADMIN, "BLACKSMITH_SERVER__API_TOKEN": READ}
    server = Server(data_dir, **env)
    server.get = lambda path: call(server, "GET", path, token=READ)  # type: ignore[method-assign]
    server.start()
    try:
        assert call(server, "GET", "/api/status", token=None)[0] == 401
        assert call(server, "POST", "/api/control/drain", {}, token=READ)[0] == 401
        job = call(server, "POST", "/api/simulator/jobs", {"duration_seconds": 60})[1]
        busy = wait_for(
            lambda: [
                v
                for v in call(server, "GET", "/api/vms", token=READ)[1]["vms"]
                if v["status"] == "busy"
            ],
            timeout=20,
            what="a busy VM",
        )[0]
        status, answer = call(
            server, "POST", f"/api/vms/{busy['vm_id']}/stop", {"reason": "testing"}
        )
        assert status == 409 and "force" in answer["detail"]
        assert cli(server, "drain", "--reason", "maintenance").returncode == 0
        state = call(server, "GET", "/api/status", token=READ)[1]
        assert state["draining"] is True
        queued = call(server, "POST", "/api/simulator/jobs", {"duration_seconds": 1})[1]
        waiting = wait_for(
            lambda: call(server, "GET", f"/api/jobs/{queued['id']}", token=READ)[1].get(
                "waiting_reason"
            ),
            timeout=10,
            what="the queued job to be seen",
        )
        assert "draining" in waiting
        result = cli(server, "pool", "limits", "large", "--max-vms", "1", "--min-idle", "3")
        assert result.returncode == 1 and "min_idle" in result.stderr
        assert cli(server, "pool", "limits", "large", "--max-vms", "1").returncode == 0
        assert cli(server, "pool", "pause", "large").returncode == 0
        assert (
            cli(server, "stop-vm", str(busy["vm_id"]), "--force", "--reason", "stuck").returncode
            == 0
        )
        wait_for(
            lambda: (
                call(server, "GET", f"/api/jobs/{job['id']}", token=READ)[1]["status"]
                == "completed"
            ),
            timeout=30,
            what="the killed job to be failed by GitHub",
        )
        events = call(server, "GET", f"/api/vms/{busy['vm_id']}", token=READ)[1]["events"]
        assert any(
            e["kind"] == "operator.vm_stop" and "bob" in e["message"] and "stuck" in e["message"]
            for e in events
        )
        vm = call(server, "GET", f"/api/vms/{busy['vm_id']}", token=READ)[1]
        assert vm["death_reason"] == "stopped_by_operator"
    finally:
        server.stop()
    again = Server(data_dir, port=server.port, **env)
    again.get = lambda path: call(again, "GET", path, token=READ)  # type: ignore[method-assign]
    again.start()
    try:
        control = call(again, "GET", "/api/control", token=READ)[1]
        assert control["draining"] is True and control["paused_pools"] == ["large"]
        assert control["draining_by"] == "bob (admin token)"
        assert control["draining_reason"] == "maintenance"
        audit = call(again, "GET", "/api/audit", token=READ)[1]["events"]
        assert [e["kind"] for e in audit][:1] == ["operator.vm_stop"]
        assert {e["actor"] for e in audit} == {"bob (admin token)"}
        large = next(p for p in control["pools"] if p["name"] == "large")
        assert large["max_vms"] == 1
        assert cli(again, "resume").returncode == 0
        assert call(again, "GET", "/api/control", token=READ)[1]["draining"] is False
    finally:
        again.stop()
        kill_all(processes_under(data_dir))


def test_changes_are_refused_when_only_a_read_token_is_set(tmp_path: pathlib.Path) -> None:
    server = Server(tmp_path / "d", BLACKSMITH_SERVER__API_TOKEN=READ)
    server.get = lambda path: call(server, "GET", path, token=READ)  # type: ignore[method-assign]
    server.start()
    try:
        status, answer = call(server, "POST", "/api/control/drain", {}, token=READ)
        assert status == 403 and "admin_token" in answer["detail"]
    finally:
        server.stop()


def test_a_restart_with_default_settings_keeps_running_jobs_running(tmp_path: pathlib.Path) -> None:
    """An upgrade restart (SIGTERM, start again) on the defaults fails no running job: the
    busy VM is left running and adopted (on the old default, drain, it was stopped)."""
    data_dir = tmp_path / "data"
    server = Server(data_dir, BLACKSMITH_SERVER__ON_SHUTDOWN=None).start()
    try:
        job = server.queue(duration_seconds=12)
        wait_for(
            lambda: any(v["status"] == "busy" for v in server.get("/api/vms")[1]["vms"]),
            timeout=20,
            what="a busy VM",
        )
    finally:
        server.stop()
    assert processes_under(data_dir), "the busy VM should have been left running"
    again = Server(data_dir, port=server.port).start()
    try:
        done = wait_for(
            lambda: (j := again.job(job))["status"] == "completed" and j,
            timeout=60,
            what="the adopted VM's job",
        )
        assert done["conclusion"] == "success"
    finally:
        again.stop()
        kill_all(processes_under(data_dir))
