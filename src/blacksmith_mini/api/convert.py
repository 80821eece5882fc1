"""Domain values and the published view rendered as API models."""

from __future__ import annotations

import collections
import datetime

from blacksmith_mini.api import schemas
from blacksmith_mini.control import view as view_mod
from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import deadlines, demand, labels, model, warmpool
from blacksmith_mini.store import repository


def vm_out(
    vm: model.Vm,
    *,
    now: float,
    policy: model.Policy,
    pid: int | None,
    kept_until: float | None = None,
) -> schemas.VmOut:
    end = vm.ended_at if vm.ended_at is not None else now
    return schemas.VmOut(
        vm_id=vm.vm_id,
        ip=vm.ip,
        status=vm.state.value,
        pid=pid if pid is not None else (vm.pid if vm.is_active else None),
        start_time=int(vm.created_at),
        uptime_seconds=max(0, int(end - vm.created_at)),
        name=vm.name,
        pool=vm.pool,
        labels=list(vm.labels),
        vcpus=vm.vcpus,
        memory_mib=vm.memory_mib,
        scope=vm.scope,
        job_id=vm.job_id,
        state_since=vm.state_since,
        deadline=deadlines.deadline(vm, policy.timeouts),
        ready_at=vm.ready_at,
        ended_at=vm.ended_at,
        death_reason=vm.death_reason.value if vm.death_reason else None,
        kept_until=kept_until if vm.is_active else None,
        host=vm.host,
    )


def job_out(
    job: model.Job,
    *,
    policy: model.Policy,
    waiting: str | None = None,
    view: view_mod.View | None = None,
) -> schemas.JobOut:
    """``view``: when the job is open in it, its pool and why it is unmatched were decided
    this tick; reuse them rather than matching again."""
    if view is not None and job.id in view.pools_of:
        pool_name, unmatched = view.pools_of[job.id], view.unmatched.get(job.id)
    else:
        found = labels.match(job.labels, policy.pools)
        pool_name = found.pool.name if found.pool else None
        unmatched = demand.unmatched_reason(job, policy, found)
    return schemas.JobOut(
        id=job.id,
        run_id=job.run_id,
        run_attempt=job.run_attempt,
        repository=job.repository,
        workflow_name=job.workflow_name,
        name=job.name,
        labels=list(job.labels),
        status=job.status.value,
        conclusion=job.conclusion,
        runner_name=job.runner_name,
        vm_id=job.vm_id,
        pool=pool_name,
        unmatched_reason=unmatched,
        html_url=job.html_url,
        stages=schemas.JobStages(
            queued=job.created_at,
            vm_requested=job.vm_requested_at,
            vm_ready=job.vm_ready_at,
            started=job.started_at,
            completed=job.completed_at,
        ),
        waiting_reason=waiting,
    )


def pool_limits(pool: model.Pool, *, paused: bool) -> schemas.PoolLimits:
    return schemas.PoolLimits(
        name=pool.name, min_idle=pool.min_idle, max_vms=pool.max_vms, paused=paused
    )


def event_out(event: repository.Event) -> schemas.EventOut:
    return schemas.EventOut(
        id=event.id,
        at=event.at,
        kind=event.kind,
        vm_id=event.vm_id,
        job_id=event.job_id,
        message=event.message,
        actor=event.actor,
    )


def github_health(view: view_mod.View) -> schemas.GitHubHealth:
    g = view.github
    return schemas.GitHubHealth(
        reachable=g.reachable,
        last_ok_at=g.last_ok_at,
        last_error=g.last_error,
        rate_limit_remaining=g.rate_limit_remaining,
        rate_limit_limit=g.rate_limit_limit,
        rate_limit_reset_at=g.rate_limit_reset_at,
        blocked_until=g.blocked_until,
        requests_total=g.requests,
        not_modified_total=g.not_modified,
        rate_limit_kind=g.rate_limit_kind,
        poll_interval_seconds=g.poll_interval_seconds,
        repositories=[
            schemas.RepositoryHealth(
                name=repo.name,
                healthy=repo.healthy,
                error=repo.error,
                moved_to=repo.moved_to,
                last_polled_at=repo.last_polled_at,
            )
            for repo in view.repositories
        ],
    )


def loop_health(view: view_mod.View, *, stuck: bool) -> schemas.LoopHealth:
    return schemas.LoopHealth(
        last_tick_at=view.loop.last_tick_at,
        last_tick_duration_ms=view.loop.last_tick_duration_ms,
        ticks=view.loop.ticks,
        last_error=view.loop.last_error,
        stuck=stuck,
    )


def status(view: view_mod.View, *, stuck: bool) -> schemas.StatusResponse:
    now = view.at
    policy = view.policy
    active = view.active_vms
    open_jobs = [
        job_out(j, policy=policy, waiting=view.waiting.get(j.id), view=view) for j in view.open_jobs
    ]
    queued = [j for j in open_jobs if j.status == "queued"]
    per_pool: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for vm in active:
        per_pool[vm.pool][vm.state.value] += 1
    queued_per_pool = collections.Counter(j.pool for j in queued if j.pool)
    idle = idle_minutes(view)
    return schemas.StatusResponse(
        timestamp=datetime.datetime.fromtimestamp(now, datetime.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        active_vms_count=len(active),
        max_vms=policy.max_vms,
        queued_jobs_count=len(queued),
        vms=[
            vm_out(
                vm,
                now=now,
                policy=policy,
                pid=view.pids.get(vm.vm_id),
                kept_until=view.kept.get(vm.vm_id),
            )
            for vm in active
        ],
        queued_jobs=queued,
        metrics=schemas.Metrics(
            spawn_rate_per_min=view.rates.spawn_rate_per_min,
            death_rate_per_min=view.rates.death_rate_per_min,
            pool_saturation_percent=view.rates.pool_saturation_percent,
            success_rate_percent=view.rates.success_rate_percent,
        ),
        running_jobs=[j for j in open_jobs if j.status != "queued"],
        unmatched_jobs=[j for j in queued if j.unmatched_reason],
        pools=[
            schemas.PoolOut(
                name=pool.name,
                labels=list(pool.registration_labels()),
                vcpus=pool.vcpus,
                memory_mib=pool.memory_mib,
                min_idle=pool.min_idle,
                max_vms=pool.max_vms,
                max_idle=pool.max_idle,
                idle_target=pool.warm,
                idle_reason=pool.idle_reason or f"fixed: min_idle {pool.min_idle}",
                idle_vm_minutes_last_hour=idle.get(pool.name, 0.0),
                queued_jobs=queued_per_pool.get(pool.name, 0),
                vms_by_status=dict(per_pool.get(pool.name, {})),
                paused=pool.name in policy.paused_pools,
                start_backoff=_backoff(view.backoff.get(pool.name)),
            )
            for pool in policy.pools
        ],
        github=github_health(view),
        loop=loop_health(view, stuck=stuck),
        driver=view.driver,
        simulate=view.simulate,
        completed_jobs_total=view.completed_jobs_total,
        snapshot_version=view.version,
        draining=policy.draining,
    )


def idle_minutes(view: view_mod.View) -> dict[str, float]:
    """Per pool, the whole VM-minutes its VMs sat idle over the hour up to ``view.at``."""
    started = {job.id: job.started_at for job in (*view.open_jobs, *view.recent_jobs)}
    found = warmpool.idle_vm_seconds(view.vms, started, since=view.at - 3600, now=view.at)
    return {pool: float(int(seconds // 60)) for pool, seconds in found.items()}


def _backoff(held: pool_backoff.PoolBackoff | None) -> schemas.StartBackoff | None:
    if held is None:
        return None
    return schemas.StartBackoff(
        failures=held.failures, reason=held.reason, next_try_at=held.next_try_at, since=held.since
    )
