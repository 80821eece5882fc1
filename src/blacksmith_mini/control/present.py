"""Building the published ``View`` and its texts from the loop's state (presentation only).

The loop calls :func:`build_view` after every tick; API handlers read the result without
locks. Nothing here changes the loop's state.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Mapping, Sequence

from blacksmith_mini.control import rates, state, view
from blacksmith_mini.control.observer import RepoHealth
from blacksmith_mini.domain import demand, hostplan, labels, model, waiting
from blacksmith_mini.domain.hostset import HostPlan
from blacksmith_mini.github import transport


def build_view(
    world: state.LoopState,
    *,
    policy: model.Policy,
    matches: Mapping[int, model.Match],
    rate: transport.RateState,
    poll_interval: float,
    repositories: Mapping[str, RepoHealth],
    loop: view.LoopHealth,
    version: int,
    content_version: int,
    driver: str,
    simulate: bool,
    now: float,
    hosts: HostPlan | None = None,
) -> view.View:
    active = tuple(sorted(world.vms.values(), key=lambda vm: vm.vm_id))
    vms_by_id = {vm.vm_id: vm for vm in [*active, *world.gone]}
    open_jobs = tuple(sorted(world.jobs.values(), key=lambda job: job.created_at))
    unmatched: dict[int, str] = {}
    waits: dict[int, str] = {}
    pools_of: dict[int, str | None] = {}
    note = github_note(rate, now)
    health = repositories
    sick = {name.lower(): h for name, h in health.items() if not h.healthy}
    room = _capacity_notes(hosts, policy=policy, active=active, jobs=open_jobs)
    for job in open_jobs:
        found = matches.get(job.id) or labels.match(job.labels, policy.pools)
        pools_of[job.id] = found.pool.name if found.pool else None
        refused = demand.unmatched_reason(job, policy, found)
        if refused:
            unmatched[job.id] = refused
        bad = sick.get(job.repository.lower())
        reason = waiting.waiting_reason(
            job,
            policy=policy,
            vms=active,
            now=now,
            github_note=note,
            backoff=world.backoff,
            repository_note=f"repository {job.repository} is unhealthy: {bad.error}"
            if bad
            else None,
            capacity_notes=room.get(job.repository),
        )
        if reason:
            waits[job.id] = reason
    return view.View(
        version=version,
        content_version=content_version,
        at=now,
        policy=policy,
        vms=(*active, *world.gone[: state.RECENT_GONE_VMS]),
        open_jobs=tuple(
            waiting.with_job_stages(job, vms_by_id.get(job.vm_id)) if job.vm_id else job
            for job in open_jobs
        ),
        recent_jobs=tuple(world.recent_completed),
        unmatched=unmatched,
        waiting=waits,
        pools_of=pools_of,
        pids={vm_id: obs.pid for vm_id, obs in world.facts.items() if obs.pid is not None},
        kept={
            vm_id: obs.kept_until
            for vm_id, obs in world.facts.items()
            if obs.kept_until is not None and obs.alive
        },
        rates=view.Rates(
            spawn_rate_per_min=world.spawns.per_minute(now=now, data_since=world.data_since),
            death_rate_per_min=world.deaths.per_minute(now=now, data_since=world.data_since),
            pool_saturation_percent=rates.saturation(len(active), policy.max_vms),
            success_rate_percent=rates.success_rate(
                successful=world.counters.successful_jobs, rated=world.counters.rated_jobs
            ),
        ),
        github=dataclasses.replace(github_health(rate), poll_interval_seconds=poll_interval),
        repositories=tuple(health[name] for name in sorted(health)),
        backoff={name: held for name, held in world.backoff.items() if held.blocks(now)},
        loop=loop,
        completed_jobs_total=world.counters.completed_jobs,
        driver=driver,
        simulate=simulate,
        hosts=hosts,
    )


def github_health(rate: transport.RateState) -> view.GitHubHealth:
    return view.GitHubHealth(
        reachable=None if rate.requests == 0 and rate.errors == 0 else rate.last_error is None,
        last_ok_at=rate.last_ok_at,
        last_error=rate.last_error,
        rate_limit_remaining=rate.remaining,
        rate_limit_limit=rate.limit,
        rate_limit_reset_at=rate.reset_at,
        blocked_until=rate.blocked_until,
        requests=rate.requests,
        not_modified=rate.not_modified,
        conditional=rate.conditional,
        rate_limit_kind=rate.limit_kind if rate.blocked_until else None,
    )


def github_note(rate: transport.RateState, now: float) -> str | None:
    """Why GitHub cannot be asked for runners right now, if it cannot."""
    if rate.blocked_until and rate.blocked_until > now:
        until = datetime.datetime.fromtimestamp(rate.blocked_until, datetime.UTC)
        return (
            f"GitHub rate limit: no runner can be registered until {until:%H:%M:%S} UTC "
            f"({rate.blocked_until - now:.0f}s)"
        )
    if rate.last_error and (rate.last_ok_at is None or now - rate.last_ok_at > 5):
        since = f" since {now - rate.last_ok_at:.0f}s" if rate.last_ok_at else ""
        return f"GitHub unreachable{since} ({rate.last_error}); retrying"
    return None


def _capacity_notes(
    hosts: HostPlan | None,
    *,
    policy: model.Policy,
    active: Sequence[model.Vm],
    jobs: Sequence[model.Job],
) -> dict[str, dict[str, str]]:
    """Many hosts: repository -> pool -> why no host takes that pool's next VM ("no host
    has 16 GiB free"), with the repository's fair share when others hold VMs."""
    if hosts is None:
        return {}
    full = hostplan.placement_notes(policy.pools, plan=hosts, vms=active)
    if not full:
        return {}
    queued = collections.Counter(j.repository for j in jobs if j.status is model.JobStatus.QUEUED)
    by_id = {job.id: job for job in jobs}
    fair = hostplan.fair_share_notes(
        queued, queued=queued, vms=active, jobs=by_id, weights=hosts.weights
    )
    return {
        repository: {
            pool: f"{note}; {fair[repository]}" if repository in fair else note
            for pool, note in full.items()
        }
        for repository in queued
    }
