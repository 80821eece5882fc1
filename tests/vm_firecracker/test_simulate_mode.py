"""Simulate mode with ``vm.driver = "firecracker"`` pointed at the fake: jobs run end to end.

The real server process (control loop, simulated GitHub, API) drives the real
``FirecrackerDriver`` and the real ``HostNetwork`` (taps, nftables) inside a network namespace
of the test's own; the fake Firecracker runs the real guest agent against its MMDS, and the agent
runs the simulated runner, which takes the job from the simulator's broker over loopback.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from blacksmith_mini.vm.firecracker import naming
from server.harness import wait_for
from vm_firecracker.simserver import TAP_PREFIX, NetnsServer, SimEnv, assert_nothing_left

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


def running_vms_with_ip(server: NetnsServer, count: int) -> list[dict[str, Any]]:
    vms = [vm for vm in server.get("/api/vms")[1]["vms"] if vm["ip"]]
    return vms if len(vms) >= count else []


def test_jobs_run_end_to_end_through_the_firecracker_driver(sim_env: SimEnv) -> None:
    server = sim_env.server().start()
    ok = server.queue(duration_seconds=1, conclusion="success")
    bad = server.queue(duration_seconds=1, conclusion="failure")

    # While they run: each VM shows its guest address from the /30 plan, and its tap (the
    # host end, .1) and anti-spoofing element exist in the server's namespace.
    vms = wait_for(lambda: running_vms_with_ip(server, 2), timeout=20, what="two VMs with an IP")
    seen: dict[int, str] = {}
    for vm in vms:
        lease = planned_lease(vm["ip"])
        detail = server.get(f"/api/vms/{vm['vm_id']}")[1]
        assert detail["ip"] == vm["ip"]
        seen[vm["vm_id"]] = vm["ip"]
        addresses = server.netns.run("ip", "-br", "addr", "show", "dev", lease.tap)
        assert f"{lease.host_ip}/30" in addresses, addresses
        assert f'"{lease.tap}" . {lease.guest_ip}' in server.netns.nft_elements()
    assert len(set(seen.values())) == 2

    done_ok = wait_for(lambda: server.completed(ok), timeout=30, what="the success job")
    done_bad = wait_for(lambda: server.completed(bad), timeout=30, what="the failure job")
    assert done_ok["conclusion"] == "success"
    assert done_bad["conclusion"] == "failure"
    assert {done_ok["vm_id"], done_bad["vm_id"]} == set(seen)
    for job in (done_ok, done_bad):
        detail = server.get(f"/api/vms/{job['vm_id']}")[1]
        assert detail["ip"] == seen[job["vm_id"]]
        assert detail["name"] == job["runner_name"]
    # At the simulated GitHub each job ran once, on the runner of its VM.
    for job in (done_ok, done_bad):
        sim = server.sim_job(job["id"])
        assert sim["status"] == "completed" and sim["runner_name"] == job["runner_name"]

    assert_nothing_left(server)
    gone = server.get(f"/api/vms/{done_ok['vm_id']}")[1]
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
