"""The whole product on its embedded defaults, as a newcomer runs it (real process, HTTP)."""

from __future__ import annotations

import pathlib
import signal

import pytest

from server.harness import Server, kill_all, processes_under, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    yield tmp_path / "data"
    kill_all(processes_under(tmp_path / "data"))


def completed(server: Server, job_id: int) -> dict[str, object] | None:
    job = server.job(job_id)
    return job if job["status"] == "completed" else None


def test_queued_job_runs_on_a_vm_and_completes_with_its_conclusion(data_dir: pathlib.Path) -> None:
    server = Server(data_dir).start()
    try:
        ok = server.queue(duration_seconds=0.5, conclusion="success")
        bad = server.queue(duration_seconds=0.5, conclusion="failure")
        vm = wait_for(lambda: server.get("/api/vms")[1]["vms"], timeout=5, what="a VM")
        assert vm[0]["status"] in ("booting", "idle", "busy")
        done_ok = wait_for(lambda: completed(server, ok), timeout=30, what="job to complete")
        done_bad = wait_for(lambda: completed(server, bad), timeout=30, what="job to complete")
        assert done_ok["conclusion"] == "success"
        assert done_bad["conclusion"] == "failure"
        stages = done_ok["stages"]
        assert isinstance(stages, dict)
        assert stages["queued"] <= stages["vm_requested"] <= stages["vm_ready"]
        assert (
            stages["vm_ready"] <= stages["started"] + 1 and stages["started"] <= stages["completed"]
        )
        assert done_ok["vm_id"] is not None
        # the job's completion can reach us before the VM's exit does: wait for the exit
        detail = wait_for(
            lambda: (d := server.get(f"/api/vms/{done_ok['vm_id']}")[1])["status"] == "gone" and d,
            timeout=15,
            what="the job's VM to be gone",
        )
        assert detail["death_reason"] == "job_finished"
        assert "Listening for Jobs" in detail["console_tail"] or detail["console_tail"] == ""
        status = wait_for(
            lambda: (s := server.get("/api/status")[1])["completed_jobs_total"] == 2 and s,
            timeout=10,
            what="counters",
        )
        assert status["metrics"]["success_rate_percent"] == 50.0
        try:
            wait_for(
                lambda: server.get("/api/status")[1]["active_vms_count"] == 0,
                timeout=20,
                what="VMs to be reaped",
            )
        except AssertionError as exc:
            vms = server.get("/api/vms?include_gone=true")[1]
            raise AssertionError(f"{exc}; VMs: {vms}") from exc
    finally:
        elapsed = server.stop()
    assert elapsed < 10
    assert processes_under(data_dir) == []


def test_restart_keeps_history_and_leaves_no_orphan(data_dir: pathlib.Path) -> None:
    server = Server(data_dir).start()
    first = server.queue(duration_seconds=0.2)
    wait_for(lambda: completed(server, first), timeout=30, what="first job")
    server.queue(duration_seconds=60)  # still running at shutdown
    wait_for(
        lambda: any(v["status"] == "busy" for v in server.get("/api/vms")[1]["vms"]),
        timeout=20,
        what="a busy VM",
    )
    assert server.stop(signal.SIGTERM) < 10
    assert processes_under(data_dir) == [], "SIGTERM left VM processes behind"
    again = Server(data_dir, port=server.port).start()
    try:
        status = again.get("/api/status")[1]
        assert status["completed_jobs_total"] >= 1
        assert status["metrics"]["success_rate_percent"] is not None
        jobs = again.get("/api/jobs")[1]["jobs"]
        assert first in [job["id"] for job in jobs]
    finally:
        again.stop()
    assert processes_under(data_dir) == []


def test_sigkill_then_restart_adopts_running_vms(data_dir: pathlib.Path) -> None:
    server = Server(data_dir).start()
    job_id = server.queue(duration_seconds=4)
    wait_for(
        lambda: any(v["status"] == "busy" for v in server.get("/api/vms")[1]["vms"]),
        timeout=20,
        what="a busy VM",
    )
    server.stop(signal.SIGKILL)
    survivors = processes_under(data_dir)
    assert survivors, "the VM should outlive a killed control plane"
    again = Server(data_dir, port=server.port).start()
    try:
        done = wait_for(lambda: completed(again, job_id), timeout=40, what="adopted job")
        assert done["conclusion"] == "success"
        wait_for(
            lambda: again.get("/api/status")[1]["active_vms_count"] == 0,
            timeout=20,
            what="adopted VM to be reaped",
        )
        assert processes_under(data_dir) == []
    finally:
        again.stop()


def test_unmatched_job_is_kept_and_explained(data_dir: pathlib.Path) -> None:
    server = Server(data_dir).start()
    try:
        job_id = server.queue(labels=["self-hosted", "gpu"], duration_seconds=1)
        job = wait_for(lambda: server.job(job_id), timeout=10, what="job to be seen")
        assert job["status"] == "queued"
        assert "gpu" in job["unmatched_reason"]
        # /api/jobs/{id} may find the job in the store before the tick that saved it has
        # published its view, which /api/status shows: wait for that view.
        status = wait_for(
            lambda: (found := server.get("/api/status")[1])["unmatched_jobs"] and found,
            timeout=10,
            what="the status to show the unmatched job",
        )
        assert [j["id"] for j in status["unmatched_jobs"]] == [job_id]
        assert status["active_vms_count"] == 0
    finally:
        server.stop()


def _new_vms(body: dict[str, object]) -> object:
    """VMs in a ``snapshot`` (the status) or upserted by a ``delta`` event."""
    if "vms" in body:
        return body["vms"]
    collections = body.get("collections") or {}
    assert isinstance(collections, dict)
    return (collections.get("vms") or {}).get("upsert")


def test_event_stream_pushes_a_new_vm_within_a_second(data_dir: pathlib.Path) -> None:
    import json
    import threading
    import time
    import urllib.request

    server = Server(data_dir).start()
    seen: list[tuple[float, dict[str, object]]] = []
    stop = threading.Event()

    def listen() -> None:
        with urllib.request.urlopen(server.url + "/api/events", timeout=20) as stream:
            for raw in stream:
                line = raw.decode().rstrip("\n")
                if line.startswith("data:"):
                    seen.append((time.monotonic(), json.loads(line[5:])))
                if stop.is_set():
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        wait_for(lambda: seen, timeout=5, what="the first status event")
        queued_at = time.monotonic()
        server.queue(duration_seconds=5)
        arrived = wait_for(
            lambda: next((t for t, body in seen if _new_vms(body)), None),
            timeout=5,
            what="an event with the new VM",
        )
        assert arrived - queued_at < 1.0
    finally:
        stop.set()
        server.stop()


def test_the_github_token_never_reaches_a_vm(data_dir: pathlib.Path) -> None:
    import os

    token = "ghp_" + os.urandom(12).hex()
    server = Server(data_dir, GITHUB_TOKEN=token).start()
    try:
        server.queue(duration_seconds=30)
        busy = wait_for(
            lambda: [v for v in server.get("/api/vms")[1]["vms"] if v["status"] == "busy"],
            timeout=20,
            what="a busy VM",
        )
        assert busy
        pids = processes_under(data_dir)
        assert pids
        for pid in pids:
            environ = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
            assert token.encode() not in environ and b"GITHUB_TOKEN" not in environ
            assert b"BLACKSMITH_" not in environ
    finally:
        server.stop()
