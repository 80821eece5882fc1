"""Many hosts, for real: a control plane in remote mode and agents as their own processes.

Jobs run on the agents' hosts, spread over them; a cordoned host gets nothing new; a host
whose agent dies is written off after the lease (its VM ``host_lost``, the event says so) and,
when its agent comes back, kills what was written off before taking work; a revoked token
stops the agent with the fix. Nothing leaks: no VM process or directory on any host, no
runner registration at the simulated GitHub.
"""

from __future__ import annotations

import pathlib
import urllib.request

from hosts.harness import LEASE_SECONDS, ControlPlane
from server.harness import wait_for


def completed(plane: ControlPlane, job_id: int) -> dict[str, object] | None:
    job = plane.job(job_id)
    return job if job["status"] == "completed" else None


def metrics_text(plane: ControlPlane) -> str:
    with urllib.request.urlopen(plane.url + "/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def vm_hosts(plane: ControlPlane) -> dict[int, str | None]:
    return {row["vm_id"]: row["host"] for row in plane.vm_rows()}


def settle(plane: ControlPlane) -> None:
    """No active VM, no VM process or directory on any host, no runner at GitHub."""
    wait_for(
        lambda: plane.get("/api/status")[1]["active_vms_count"] == 0,
        timeout=30,
        what="every VM to be gone",
    )
    for agent in plane.agents.values():
        wait_for(
            lambda agent=agent: not agent.vm_processes() and not agent.vm_dirs(),
            timeout=20,
            what=f"host {agent.name} to hold no VM",
        )
    wait_for(lambda: plane.sim_runners() == [], timeout=20, what="no runner left at GitHub")


def test_jobs_run_on_the_agents_hosts_spread_over_them(plane: ControlPlane) -> None:
    plane.add_agent("h1")
    plane.add_agent("h2")
    jobs = [plane.queue(duration_seconds=2.0) for _ in range(4)]
    for job_id in jobs:
        done = wait_for(lambda j=job_id: completed(plane, j), timeout=60, what="job to complete")
        assert done["conclusion"] == "success"
    used = set(vm_hosts(plane).values())
    assert used == {"h1", "h2"}, used  # spread: 2 vCPU VMs over two 4-vCPU hosts
    settle(plane)
    metrics = metrics_text(plane)
    for name in ("h1", "h2"):
        assert f'blacksmith_host_up{{host="{name}"}} 1.0' in metrics
        assert f'blacksmith_host_vcpus{{host="{name}"}} 4.0' in metrics
        assert f'blacksmith_host_heartbeat_age_seconds{{host="{name}"}}' in metrics


def test_a_cordoned_host_gets_no_new_vm_and_uncordoned_takes_work_again(
    plane: ControlPlane,
) -> None:
    plane.add_agent("h1")
    plane.add_agent("h2")
    status, answer = plane.request("POST", "/api/hosts/h1/cordon", {"reason": "kernel update"})
    assert status == 200 and answer["state"] == "cordoned", answer
    jobs = [plane.queue(duration_seconds=0.5) for _ in range(3)]
    for job_id in jobs:
        wait_for(lambda j=job_id: completed(plane, j), timeout=60, what="job to complete")
    assert set(vm_hosts(plane).values()) == {"h2"}
    status, answer = plane.request("POST", "/api/hosts/h1/uncordon", {})
    assert status == 200 and answer["state"] == "up"
    settle(plane)


def test_a_lost_host_is_written_off_and_kills_what_was_written_off_when_it_returns(
    plane: ControlPlane,
) -> None:
    h1 = plane.add_agent("h1", vcpus=2)
    job = plane.queue(duration_seconds=600.0)  # busy on h1 until it is written off
    wait_for(
        lambda: any(v["status"] == "busy" for v in plane.get("/api/vms")[1]["vms"]),
        timeout=30,
        what="the job's VM to be busy",
    )
    [vm_id] = [vm for vm, host in vm_hosts(plane).items() if host == "h1"]
    assert h1.vm_processes()
    h1.kill()  # the agent dies; its VM (a process) lives on, as a real host's would
    down = plane.wait_host("h1", "down", timeout=LEASE_SECONDS + 20)
    assert "no heartbeat" in (down["down_reason"] or "")
    detail = wait_for(
        lambda: (d := plane.get(f"/api/vms/{vm_id}")[1])["status"] == "gone" and d,
        timeout=20,
        what="the lost host's VM to be written off",
    )
    assert detail["death_reason"] == "host_lost"
    assert any("h1 is down" in message for message in plane.events("host.down"))
    assert h1.vm_processes(), "the VM outlives its agent until the agent returns"
    h1.start()  # the agent returns: it kills the written-off VM before taking work
    plane.wait_host("h1", "up")
    wait_for(lambda: not h1.vm_processes(), timeout=20, what="the written-off VM to be killed")
    assert any("written-off" in message for message in plane.events("host.up"))
    # The busy runner was left for GitHub to fail; the job is not forgotten.
    job_now = plane.job(job)
    assert job_now["status"] in ("in_progress", "completed", "queued")
    plane.request("POST", "/_sim/faults", {})  # no-op: the simulator still answers


def test_a_revoked_token_stops_the_agent_with_the_fix(plane: ControlPlane) -> None:
    h1 = plane.add_agent("h1")
    status, _ = plane.request("DELETE", "/api/hosts/h1")
    assert status == 204
    assert h1.process is not None
    h1.process.wait(timeout=30)
    assert h1.process.returncode == 3
    assert "refused this host's token" in h1.log.read_text()


def test_the_agent_holds_no_github_credential(plane: ControlPlane) -> None:
    h1 = plane.add_agent("h1")
    environ = pathlib.Path(f"/proc/{h1.process.pid}/environ").read_bytes()  # type: ignore[union-attr]
    assert b"GITHUB_TOKEN" not in environ and b"BLACKSMITH_" not in environ
    cmdline = pathlib.Path(f"/proc/{h1.process.pid}/cmdline").read_bytes()  # type: ignore[union-attr]
    assert b"bmh_" not in cmdline  # the token travels in a file, not the command line
