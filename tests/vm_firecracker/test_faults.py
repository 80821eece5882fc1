"""Faults, through the real server + FirecrackerDriver + fake Firecracker in a namespace.

Each fault hits the first VM only (``FAKE_FC_FAULT_ONCE``), so every test also shows recovery:
the job stays queued, a later VM runs it, and it runs exactly once. Afterwards no tap, nft
element, state directory (socket, disk), VM process or runner registration is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from server.harness import wait_for
from vm_firecracker.simserver import NetnsServer, SimEnv, assert_nothing_left

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def once(sim_env: SimEnv, **knobs: str) -> dict[str, str]:
    """The fake's fault knobs, holding for the first VM only."""
    return {"FAKE_FC_FAULT_ONCE": str(sim_env.data_dir.parent / "fault-once"), **knobs}


def vm(server: NetnsServer, vm_id: int) -> dict[str, Any]:
    status, answer = server.get(f"/api/vms/{vm_id}")
    assert status == 200, answer
    return dict(answer)


def gone(server: NetnsServer, vm_id: int) -> dict[str, Any] | None:
    found = vm(server, vm_id)
    return found if found["status"] == "gone" else None


def event_text(detail: dict[str, Any]) -> str:
    return "\n".join(str(event.get("message")) for event in detail["events"])


def ran_once_after_a_failed_vm(server: NetnsServer, job_id: int) -> dict[str, Any]:
    """The job completed successfully on a VM other than VM 1, and GitHub saw one run."""
    done: dict[str, Any] = wait_for(
        lambda: server.completed(job_id), timeout=40, what="the job to complete"
    )
    assert done["conclusion"] == "success", done
    assert done["vm_id"] not in (None, 1), done
    sim = server.sim_job(job_id)
    assert sim["status"] == "completed" and sim["conclusion"] == "success"
    assert sim["runner_name"] == done["runner_name"]
    return done


def first_vm_failed(server: NetnsServer) -> dict[str, Any]:
    first: dict[str, Any] = wait_for(lambda: gone(server, 1), timeout=20, what="VM 1 to be gone")
    assert first["job_id"] is None, first  # it never took the job
    return first


def test_vmm_dies_while_being_configured(sim_env: SimEnv) -> None:
    server = sim_env.server(**once(sim_env, FAKE_FC_CRASH="PUT /machine-config")).start()
    job = server.queue(duration_seconds=1, conclusion="success")
    first = first_vm_failed(server)
    assert first["death_reason"] == "start_failed", first
    ran_once_after_a_failed_vm(server, job)
    assert_nothing_left(server)


def test_vmm_dies_during_boot(sim_env: SimEnv) -> None:
    server = sim_env.server(**once(sim_env, FAKE_FC_CRASH="after-boot")).start()
    job = server.queue(duration_seconds=1, conclusion="success")
    first = first_vm_failed(server)
    assert first["death_reason"] == "crashed", first
    ran_once_after_a_failed_vm(server, job)
    assert_nothing_left(server)


def test_api_call_fails(sim_env: SimEnv) -> None:
    server = sim_env.server(**once(sim_env, FAKE_FC_FAIL="PUT /drives/rootfs")).start()
    job = server.queue(duration_seconds=1, conclusion="success")
    first = first_vm_failed(server)
    assert first["death_reason"] == "start_failed", first
    assert "Injected fault for PUT /drives/rootfs" in event_text(first), first["events"]
    ran_once_after_a_failed_vm(server, job)
    assert_nothing_left(server)


def test_guest_never_reports_and_the_boot_deadline_fires(sim_env: SimEnv) -> None:
    server = sim_env.server(
        BLACKSMITH_VM__TIMEOUTS__BOOT="3", **once(sim_env, FAKE_FC_NO_GUEST="1")
    ).start()
    job = server.queue(duration_seconds=1, conclusion="success")
    first = first_vm_failed(server)
    assert first["death_reason"] == "boot_timeout", first
    assert first["ready_at"] is None
    ran_once_after_a_failed_vm(server, job)
    assert_nothing_left(server)


def test_guest_hangs_at_stop_and_is_killed(sim_env: SimEnv, tmp_path: Path) -> None:
    """The agent runs but its runner never comes online; at the boot deadline the guest ignores
    SendCtrlAltDel, so the driver SIGKILLs the VM's process group (runner included)."""
    runner_dir = tmp_path / "hanging-runner"
    runner_dir.mkdir()
    run_sh = runner_dir / "run.sh"
    run_sh.write_text("#!/bin/sh\nexec sleep 600\n")
    run_sh.chmod(0o755)
    knobs = once(sim_env, FAKE_FC_IGNORE_CTRL_ALT_DEL="1", FAKE_FC_RUNNER_DIR=str(runner_dir))
    server = sim_env.server(
        BLACKSMITH_VM__TIMEOUTS__BOOT="3",
        BLACKSMITH_VM__FIRECRACKER__STOP_GRACE_SECONDS="2",  # time to see the guest hang
        **knobs,
    ).start()
    job = server.queue(duration_seconds=1, conclusion="success")
    wait_for(
        lambda: "guest ignores ctrl-alt-del" in vm(server, 1)["console_tail"],
        timeout=20,
        what="VM 1's guest to ignore SendCtrlAltDel",
    )
    console = vm(server, 1)["console_tail"]
    assert "blacksmith-agent: boot-data-read" in console and "Listening for Jobs" not in console
    first = first_vm_failed(server)
    assert first["death_reason"] == "boot_timeout", first
    # The driver escalated to SIGKILL after stop_grace_seconds (no exit code: killed).
    assert f"vm {first['name']}: no exit 2s after SendCtrlAltDel, killing" in server.log_text()
    assert "exited with code" not in event_text(first), first["events"]
    ran_once_after_a_failed_vm(server, job)
    assert_nothing_left(server)


def busy_or_booting(server: NetnsServer, status: str) -> list[int]:
    return [v["vm_id"] for v in server.get("/api/vms")[1]["vms"] if v["status"] == status]


def test_control_plane_killed_during_boot(sim_env: SimEnv) -> None:
    """The VM outlives its SIGKILLed control plane; the next one adopts it and it runs the job."""
    knobs = once(sim_env, FAKE_FC_BOOT_DELAY="2")  # a slow first boot, to kill the server in
    server = sim_env.server(**knobs).start()
    job = server.queue(duration_seconds=1, conclusion="success")
    booting = wait_for(lambda: busy_or_booting(server, "booting"), timeout=20, what="a boot")
    server.kill()
    assert server.vm_dirs() and server.netns.interfaces(), "the VM died with the control plane"
    again = sim_env.server(**knobs).start()
    done = wait_for(lambda: again.completed(job), timeout=40, what="the job to complete")
    assert done["conclusion"] == "success" and done["vm_id"] == booting[0], done
    assert "adopting 1 VM(s) left by an earlier run" in again.log_text()
    sim = again.sim_job(job)
    assert sim["status"] == "completed" and sim["runner_name"] == done["runner_name"]
    assert_nothing_left(again, timeout=30)


def test_control_plane_killed_during_a_job(sim_env: SimEnv) -> None:
    """The runner keeps working while no control plane runs (it retries its completion call);
    the restarted control plane adopts the VM and sees the job through, once."""
    server = sim_env.server().start()
    job = server.queue(duration_seconds=4, conclusion="success")
    busy = wait_for(lambda: busy_or_booting(server, "busy"), timeout=20, what="a busy VM")
    server.kill()
    assert server.vm_dirs() and server.netns.interfaces(), "the VM died with the control plane"
    again = sim_env.server().start()
    done = wait_for(lambda: again.completed(job), timeout=40, what="the job to complete")
    assert done["conclusion"] == "success" and done["vm_id"] == busy[0], done
    sim = again.sim_job(job)
    assert sim["status"] == "completed" and sim["runner_name"] == done["runner_name"]
    assert len(again.get("/api/vms?include_gone=true")[1]["vms"]) == 1
    assert_nothing_left(again, timeout=30)
