"""Small builders for domain values used across the domain tests."""

from __future__ import annotations

from blacksmith_mini.domain import labels, model

DEFAULT = model.Pool(name="default", labels=labels.normalize(["self-hosted", "linux", "x64"]))
LARGE = model.Pool(
    name="large",
    labels=labels.normalize(["self-hosted", "linux", "x64", "large"]),
    vcpus=8,
    max_vms=2,
)


def policy(**changes: object) -> model.Policy:
    values: dict[str, object] = {
        "max_vms": 5,
        "pools": (DEFAULT, LARGE),
        "scopes": ("acme/app",),
    }
    values.update(changes)
    return model.Policy(**values)  # type: ignore[arg-type]


def job(
    job_id: int = 1,
    *,
    status: model.JobStatus = model.JobStatus.QUEUED,
    job_labels: tuple[str, ...] = ("self-hosted", "linux", "x64"),
    created_at: float = 0.0,
    runner_name: str | None = None,
    repository: str = "acme/app",
    run_attempt: int = 1,
    conclusion: str | None = None,
) -> model.Job:
    return model.Job(
        id=job_id,
        run_id=job_id * 10,
        run_attempt=run_attempt,
        repository=repository,
        labels=job_labels,
        status=status,
        created_at=created_at,
        runner_name=runner_name,
        conclusion=conclusion,
    )


def vm(
    vm_id: int = 1,
    *,
    state: model.VmState = model.VmState.IDLE,
    pool: model.Pool = DEFAULT,
    scope: str = "acme/app",
    state_since: float = 0.0,
    created_at: float = 0.0,
    runner_id: int | None = None,
) -> model.Vm:
    return model.Vm(
        vm_id=vm_id,
        name=f"bm-{vm_id}-abc",
        pool=pool.name,
        scope=scope,
        labels=pool.registration_labels(),
        vcpus=pool.vcpus,
        memory_mib=pool.memory_mib,
        state=state,
        state_since=state_since,
        created_at=created_at,
        runner_id=runner_id,
    )
