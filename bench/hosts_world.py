"""A many-hosts world for the hosts benchmarks, deterministic: 100 hosts (80 x64, 20 arm64;
3 cordoned, 2 draining, 1 down), the VMs of ``synthetic.world`` spread over them, and the
records a control plane keeps of them (host reports, agent observations, VM rows)."""

from __future__ import annotations

import dataclasses
from typing import Any

import synthetic

from blacksmith_mini.domain import model
from blacksmith_mini.domain import placement as pl
from blacksmith_mini.domain.hostset import HostPlan

HOSTS, VMS, JOBS = 100, 10_000, 20_000
HOST_VCPUS, HOST_MEMORY_MIB, HOST_DISK_MIB = 256, 1024 * 1024, 8 * 1024 * 1024
VM_DISK_MIB = 20 * 1024
OVERCOMMIT = pl.Overcommit(cpu=2.0)
UNLIMITED = 1_000_000
NOW = 100_000.0


def hosts(count: int = HOSTS) -> list[pl.Host]:
    odd = [pl.HostState.CORDONED] * 3 + [pl.HostState.DRAINING] * 2 + [pl.HostState.DOWN]
    states = odd + [pl.HostState.UP] * (count - len(odd))
    return [
        pl.Host(
            name=f"host-{index:03}",
            arch="arm64" if index % 5 == 4 else "x64",
            vcpus=HOST_VCPUS,
            memory_mib=HOST_MEMORY_MIB,
            disk_mib=HOST_DISK_MIB,
            state=states[(index * 37) % count],
        )
        for index in range(count)
    ]


def host_plan(found: list[pl.Host]) -> HostPlan:
    return HostPlan(hosts=tuple(found), overcommit=OVERCOMMIT, vm_disk_mib=VM_DISK_MIB)


def uncapped(policy: model.Policy) -> model.Policy:
    """``policy`` with no fleet or pool limit in reach: the hosts' room decides."""
    pools = tuple(dataclasses.replace(pool, max_vms=UNLIMITED) for pool in policy.pools)
    return dataclasses.replace(policy, max_vms=UNLIMITED, pools=pools)


def world(
    *, jobs: int = JOBS, vms: int = VMS, capped: bool = True, seed: int = 7
) -> tuple[model.Snapshot, model.Policy, float]:
    """``synthetic.world`` with each VM on a host of its architecture (round-robin) and the
    hosts in the snapshot. ``capped``: synthetic's limits (``max_vms`` = VMs + 500, pools
    1,000-5,000); otherwise none in reach, so placement decides every start."""
    snapshot, policy, now = synthetic.world(jobs=jobs, vms=vms, seed=seed)
    found = hosts()
    by_arch = {
        arch: [host.name for host in found if host.arch == arch] for arch in ("x64", "arm64")
    }
    placed = tuple(
        dataclasses.replace(vm, host=_spread(by_arch, vm, index))
        for index, vm in enumerate(snapshot.vms)
    )
    snapshot = dataclasses.replace(snapshot, vms=placed, hosts=host_plan(found))
    return snapshot, policy if capped else uncapped(policy), now


def _spread(by_arch: dict[str, list[str]], vm: model.Vm, index: int) -> str:
    names = by_arch["arm64" if "arm64" in vm.labels else "x64"]
    return names[index % len(names)]


# --- records, as the store keeps them ------------------------------------------------------


def report(host: pl.Host) -> dict[str, Any]:
    """What an agent says of its host in ``hello`` (``wire.HostReport``)."""
    return {
        "arch": host.arch,
        "vcpus": host.vcpus,
        "memory_mib": host.memory_mib,
        "disk_mib": host.disk_mib,
        "drivers": ["firecracker"],
        "versions": {"agent": "bench"},
    }


def observation(vm_id: int, *, busy: bool, now: float) -> dict[str, Any]:
    """An agent's observation of one running VM (``wire.Observation``)."""
    return {
        "vm_id": vm_id,
        "name": f"bm-bench-{vm_id}",
        "alive": True,
        "started_at": now - 100,
        "pid": 10_000 + vm_id,
        "ip": f"172.16.{vm_id // 64 % 256}.{(vm_id % 64) * 4 + 2}",
        "runner_online": True,
        "job_started": busy,
    }


def vm_rows(
    *, hosts_: list[pl.Host], vms: int, now: float, idle: bool = True
) -> list[dict[str, Any]]:
    """``vms`` VM rows (4 in 5 busy, the rest idle; ``idle=False``: all busy), spread over
    ``hosts_`` in turn."""
    pool = synthetic.POOLS[0]
    rows = []
    for vm_id in range(1, vms + 1):
        busy = vm_id % 5 != 0 or not idle
        rows.append(
            {
                "vm_id": vm_id,
                "name": f"bm-bench-{vm_id}",
                "pool": pool.name,
                "scope": synthetic.SCOPES[vm_id % len(synthetic.SCOPES)],
                "labels": list(pool.registration_labels()),
                "vcpus": pool.vcpus,
                "memory_mib": pool.memory_mib,
                "state": (model.VmState.BUSY if busy else model.VmState.IDLE).value,
                "state_since": now - 10,
                "created_at": now - 100,
                "ready_at": now - 90,
                "pid": 10_000 + vm_id,
                "ran_job": busy,
                "host": hosts_[vm_id % len(hosts_)].name,
            }
        )
    return rows
