"""Synthetic worlds for the benchmarks: many jobs and VMs, deterministic."""

from __future__ import annotations

import random

from blacksmith_mini.domain import facts, labels, model

POOLS = (
    model.Pool(
        name="default",
        labels=labels.normalize(["self-hosted", "linux", "x64"]),
        max_vms=5000,
        min_idle=2,
    ),
    model.Pool(
        name="large",
        labels=labels.normalize(["self-hosted", "linux", "x64", "large"]),
        vcpus=8,
        memory_mib=16384,
        max_vms=1000,
    ),
    model.Pool(
        name="arm", labels=labels.normalize(["self-hosted", "linux", "arm64"]), max_vms=1000
    ),
)
LABEL_SETS = [
    ("self-hosted", "linux", "x64"),
    ("self-hosted", "Linux"),
    ("self-hosted", "large"),
    ("self-hosted", "arm64"),
    ("self-hosted", "gpu"),
]
SCOPES = tuple(f"acme/repo{i}" for i in range(20))
VM_STATES = [
    model.VmState.BOOTING,
    model.VmState.IDLE,
    model.VmState.BUSY,
    model.VmState.BUSY,
    model.VmState.BUSY,
    model.VmState.STOPPING,
]


def world(*, jobs: int, vms: int, seed: int = 7) -> tuple[model.Snapshot, model.Policy, float]:
    rng = random.Random(seed)
    now = 100_000.0
    job_list = tuple(
        model.Job(
            id=i,
            run_id=i,
            repository=rng.choice(SCOPES),
            labels=rng.choice(LABEL_SETS),
            status=model.JobStatus.QUEUED,
            created_at=now - rng.uniform(0, 600),
        )
        for i in range(1, jobs + 1)
    )
    vm_list = []
    fact = {}
    for vm_id in range(1, vms + 1):
        pool = rng.choice(POOLS)
        state = rng.choice(VM_STATES)
        vm_list.append(
            model.Vm(
                vm_id=vm_id,
                name=f"bm-{vm_id}-x",
                pool=pool.name,
                scope=rng.choice(SCOPES),
                labels=pool.registration_labels(),
                vcpus=pool.vcpus,
                memory_mib=pool.memory_mib,
                state=state,
                state_since=now - rng.uniform(0, 100),
                created_at=now - 200,
                ip=f"172.16.{vm_id // 64}.{(vm_id % 64) * 4 + 2}",
                pid=10_000 + vm_id,
            )
        )
        fact[vm_id] = facts.VmFacts(
            alive=True,
            runner_online=state is not model.VmState.BOOTING,
            job_started=state is model.VmState.BUSY,
        )
    policy = model.Policy(max_vms=vms + 500, pools=POOLS, scopes=SCOPES)
    return model.Snapshot(jobs=job_list, vms=tuple(vm_list), facts=fact), policy, now
