"""Simulate mode with ``vm.driver = "firecracker"`` pointed at the fake: jobs run end to end.

The real server process (control loop, simulated GitHub, API) drives the real
``FirecrackerDriver`` and the real ``HostNetwork`` (taps, nftables) inside a network namespace
of the test's own; the fake Firecracker runs the real guest agent against its MMDS, and the agent
runs the simulated runner, which takes the job from the simulator's broker over loopback.
"""

from __future__ import annotations

import ipaddress
import time

import pytest

from blacksmith_mini.vm.firecracker import naming
from server.harness import wait_for
from vm_firecracker.simserver import (
    TAP_PREFIX,
    NetnsServer,
    SimEnv,
    assert_nothing_left,
    our_namespaces,
)

pytestmark = [pytest.mark.netns, pytest.mark.slow]

NETWORK_CIDR = "172.16.0.0/16"  # the default network_cidr


def planned_lease(guest_ip: str) -> naming.NetLease:
    """The /30 plan's lease whose guest address is ``guest_ip`` (fails if there is none)."""
    offset = int(ipaddress.IPv4Address(guest_ip)) - int(ipaddress.IPv4Network(NETWORK_CIDR)[0])
    slot, rest = divmod(offset, 4)
    assert rest == 2, f"{guest_ip} is not the guest (.2) address of a /30 of {NETWORK_CIDR}"
    lease = naming.lease_for_slot(network_cidr=NETWORK_CIDR, tap_prefix=TAP_PREFIX, slot=slot)
    assert lease.guest_ip == guest_ip
    return lease


def network_of(server: NetnsServer, lease: naming.NetLease) -> str | None:
    """What is missing of the VM's host networking in the server's namespace (None: all there)."""
    addresses = server.netns.run("ip", "-br", "addr", "show", "dev", lease.tap, check=False)
    if f"{lease.host_ip}/30" not in addresses:
        return f"tap {lease.tap} with {lease.host_ip}/30 (found {addresses.strip()!r})"
    if f'"{lease.tap}" . {lease.guest_ip}' not in server.netns.nft_elements():
        return f"nft element of {lease.tap}"
    return None


def watch_vms(server: NetnsServer, job_ids: list[int], timeout: float) -> dict[int, str]:
    """Until the jobs complete: every VM with an address, checked while it is alive.

    Returns {vm_id: guest ip}; fails if a live VM's address is not from the /30 plan, or its
    tap (the host end, ``.1``) or anti-spoofing element is missing from the server's namespace.
    """
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while not all(server.completed(job) for job in job_ids):
        assert time.monotonic() < deadline, f"jobs not completed after {timeout}s: {seen}"
        for vm in server.get("/api/vms")[1]["vms"]:
            if not vm["ip"] or vm["vm_id"] in seen:
                continue
            lease = planned_lease(vm["ip"])
            missing = network_of(server, lease)
            if missing is not None:
                now = server.get(f"/api/vms/{vm['vm_id']}")[1]["status"]
                assert now == "gone", f"VM {vm['vm_id']} ({now}) lacks its {missing}"
                continue  # it ended in between: nothing to check any more
            assert server.get(f"/api/vms/{vm['vm_id']}")[1]["ip"] == vm["ip"]
            seen[vm["vm_id"]] = vm["ip"]
        time.sleep(0.05)
    return seen


def test_jobs_run_end_to_end_through_the_firecracker_driver(sim_env: SimEnv) -> None:
    server = sim_env.server().start()
    ok = server.queue(duration_seconds=1, conclusion="success")
    bad = server.queue(duration_seconds=1, conclusion="failure")
    seen = watch_vms(server, [ok, bad], timeout=40)

    done_ok, done_bad = server.job(ok), server.job(bad)
    assert done_ok["conclusion"] == "success"
    assert done_bad["conclusion"] == "failure"
    assert done_ok["vm_id"] in seen and done_bad["vm_id"] in seen, (done_ok, done_bad, seen)
    assert seen[done_ok["vm_id"]] != seen[done_bad["vm_id"]]  # two VMs at once: two /30s
    for job in (done_ok, done_bad):
        detail = server.get(f"/api/vms/{job['vm_id']}")[1]
        assert detail["ip"] == seen[job["vm_id"]]
        assert detail["name"] == job["runner_name"]
        # At the simulated GitHub each job ran once, on the runner of its VM.
        sim = server.sim_job(job["id"])
        assert sim["status"] == "completed" and sim["runner_name"] == job["runner_name"]

    assert_nothing_left(server)
    for job in (done_ok, done_bad):
        gone = server.get(f"/api/vms/{job['vm_id']}")[1]
        assert gone["status"] == "gone" and gone["death_reason"] == "job_finished", gone
    assert server.stop() < 10


def test_shutdown_with_a_running_job_releases_every_vm(sim_env: SimEnv) -> None:
    """SIGTERM stops the loop and every VM; their taps, nft elements and disks go with them.

    The busy runner stays registered at (simulated) GitHub, which fails its job once it notices
    the runner is lost; ``test_faults`` follows that through a restart.
    """
    server = sim_env.server().start()
    server.queue(duration_seconds=60, conclusion="success")
    wait_for(
        lambda: any(vm["status"] == "busy" for vm in server.get("/api/vms")[1]["vms"]),
        timeout=20,
        what="a busy VM",
    )
    assert server.netns.interfaces() and server.vm_dirs()
    assert server.stop() < 10
    assert_nothing_left(server, timeout=5, runners=False)


def test_snapshot_starts_run_jobs_in_their_own_namespaces(sim_env: SimEnv) -> None:
    """With snapshots: the first VM boots cold while the template is built; once it is ready
    a job's VM is a clone, in its own namespace with the template's address, routed to its
    own slot, and its job runs; after shutdown no namespace, tap or element is left."""
    server = sim_env.server(BLACKSMITH_VM__FIRECRACKER__SNAPSHOTS="true").start()
    first = server.queue(duration_seconds=0.5, conclusion="success")
    watch_vms(server, [first], timeout=40)
    templates = sim_env.data_dir / "templates"
    wait_for(lambda: any(templates.glob("*/template.json")), timeout=40, what="a ready template")
    second = server.queue(duration_seconds=2, conclusion="success")
    wait_for(
        lambda: any(
            vm["status"] == "busy" and vm["vm_id"] != server.job(first)["vm_id"]
            for vm in server.get("/api/vms")[1]["vms"]
        ),
        timeout=40,
        what="the clone's runner busy with the second job",
    )
    assert any(name.startswith(f"{TAP_PREFIX}_") for name in our_namespaces())
    seen = watch_vms(server, [second], timeout=40)  # its host end at its slot's address
    job = server.job(second)
    assert job["conclusion"] == "success" and job["vm_id"] in seen
    events = [e["message"] for e in server.get(f"/api/vms/{job['vm_id']}")[1]["events"]]
    assert any("restored from template" in message for message in events), events
    cold = server.get(f"/api/vms/{server.job(first)['vm_id']}")[1]["events"]
    assert any("cold boot: " in e["message"] for e in cold), cold  # the reason is shown
    assert server.stop() < 10
    assert_nothing_left(server)  # the next start's network, wired ahead, goes at shutdown
