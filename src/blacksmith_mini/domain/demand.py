"""Demand: which (pool, scope) can take a job, and how many queued jobs each key has.

Counted per (pool, scope), not per job, because GitHub does not pin a job to a runner: any
runner whose labels cover a job may take it. At organization scope, a job from a repository
the runner group does not serve (``Policy.unserved``) is no one's demand: GitHub would never
hand it to our runners, so a VM started for it would only idle.
"""

from __future__ import annotations

import collections
import functools
from collections.abc import Iterable, Mapping, Sequence

from blacksmith_mini.domain import labels, model

DemandKey = tuple[str, str]  # (pool name, scope)


def demand_key(job: model.Job, pool: model.Pool, policy: model.Policy) -> DemandKey | None:
    """The (pool, scope) whose runners can take ``job``; None when no scope serves its repo."""
    if policy.org_scope:
        if not policy.scopes or job.repository.lower() in policy.unserved:
            return None
        return (pool.name, policy.scopes[0])
    scope = _scopes_by_repository(policy.scopes).get(job.repository.lower())
    return (pool.name, scope) if scope is not None else None


@functools.lru_cache(maxsize=64)
def _scopes_by_repository(scopes: tuple[str, ...]) -> Mapping[str, str]:
    """Lower-cased repository -> its scope (the first listed wins), once per scope list."""
    found: dict[str, str] = {}
    for scope in scopes:
        found.setdefault(scope.lower(), scope)
    return found


def unmatched_reason(job: model.Job, policy: model.Policy, found: labels.Match) -> str | None:
    """Why no VM of ours will ever take ``job``: no pool carries its labels, or (organization
    scope) the runner group does not serve its repository."""
    if found.pool is None:
        return found.unmatched_reason
    if policy.org_scope:
        return policy.unserved.get(job.repository.lower())
    return None


def queued_demand(
    jobs: Iterable[model.Job], policy: model.Policy
) -> tuple[dict[DemandKey, int], dict[DemandKey, float]]:
    """Queued jobs per (pool, scope), and the oldest queued time per key."""
    by_key = queued_by_key(jobs, policy)
    counts = {key: len(found) for key, found in by_key.items()}
    oldest = {key: found[0].created_at for key, found in by_key.items()}
    return counts, oldest


def match_all(jobs: Iterable[model.Job], pools: Sequence[model.Pool]) -> dict[int, labels.Match]:
    """Each job's pool (or why none), once per tick; jobs with the same labels share a match."""
    cache: dict[tuple[str, ...], labels.Match] = {}
    found: dict[int, labels.Match] = {}
    for job in jobs:
        match = cache.get(job.labels)
        if match is None:
            match = cache[job.labels] = labels.match(job.labels, pools)
        found[job.id] = match
    return found


def queued_by_key(
    jobs: Iterable[model.Job],
    policy: model.Policy,
    *,
    matches: Mapping[int, labels.Match] | None = None,
) -> dict[DemandKey, list[model.Job]]:
    """Queued jobs per (pool, scope), oldest first; ``matches``: computed once per tick.
    (The planner keeps its own between ticks: ``queuebook``.)"""
    keys: dict[tuple[tuple[str, ...], str], DemandKey | None] = {}  # by (labels, repository)
    found_jobs: dict[DemandKey, list[model.Job]] = collections.defaultdict(list)
    queued = model.JobStatus.QUEUED
    for job in jobs:
        if job.status is not queued:
            continue
        marker = (job.labels, job.repository)
        if marker in keys:
            key = keys[marker]
        else:
            found = matches.get(job.id) if matches is not None else None
            if found is None:
                found = labels.match(job.labels, policy.pools)
            key = keys[marker] = (
                demand_key(job, found.pool, policy) if found.pool is not None else None
            )
        if key is not None:
            found_jobs[key].append(job)
    for listed in found_jobs.values():
        listed.sort(key=model.JOB_AGE)
    return dict(found_jobs)
