"""Prometheus metrics: counters and histograms the loop updates as things happen, and gauges
read from the published view at scrape time (so a scrape never waits for the loop)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blacksmith_mini.control import view as view_mod

LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.vm_starts = Counter("blacksmith_vm_starts", "VMs requested.", ["pool"], registry=r)
        self.vm_deaths = Counter(
            "blacksmith_vm_deaths", "VMs gone, by reason.", ["pool", "reason"], registry=r
        )
        self.jobs_completed = Counter(
            "blacksmith_jobs_completed",
            "Jobs completed, by conclusion.",
            ["conclusion"],
            registry=r,
        )
        self.start_failures = Counter(
            "blacksmith_vm_start_failures",
            "VM starts or runner registrations that failed, by pool (each backs the pool off).",
            ["pool"],
            registry=r,
        )
        self.act_failures = Counter(
            "blacksmith_act_failures",
            "Actions that failed (retried later).",
            ["action"],
            registry=r,
        )
        self.queued_to_vm_ready = Histogram(
            "blacksmith_job_queued_to_vm_ready_seconds",
            "From a job queued at GitHub to a runner online for it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queued_to_started = Histogram(
            "blacksmith_job_queued_to_started_seconds",
            "From a job queued at GitHub to the job starting.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.boot = Histogram(
            "blacksmith_vm_boot_seconds",
            "From a VM requested to its runner online.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tick = Histogram(
            "blacksmith_loop_tick_seconds",
            "Duration of one reconcile tick.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )

    def watch(self, current_view: Callable[[], view_mod.View]) -> None:
        self.registry.register(ViewCollector(current_view))


class ViewCollector(Collector):
    """Gauges computed from the latest published view."""

    def __init__(self, current_view: Callable[[], view_mod.View]) -> None:
        self.current_view = current_view

    def collect(self) -> Iterator[Metric]:
        v = self.current_view()
        queued = GaugeMetricFamily(
            "blacksmith_queue_depth",
            "Queued jobs, by pool ('' when no pool matches).",
            labels=["pool"],
        )
        depth: collections.Counter[str] = collections.Counter()
        for job in v.open_jobs:
            if job.status.value == "queued":
                depth[v.pools_of.get(job.id) or ""] += 1
        for pool in v.policy.pools:
            depth.setdefault(pool.name, 0)
        for pool_name, count in sorted(depth.items()):
            queued.add_metric([pool_name], count)
        yield queued
        vms = GaugeMetricFamily(
            "blacksmith_vms", "VMs, by state and pool.", labels=["state", "pool"]
        )
        states: collections.Counter[tuple[str, str]] = collections.Counter(
            (vm.state.value, vm.pool) for vm in v.active_vms
        )
        for (state, pool_name), count in sorted(states.items()):
            vms.add_metric([state, pool_name], count)
        yield vms
        yield _gauge("blacksmith_max_vms", "The max_vms limit.", v.policy.max_vms)
        yield _gauge("blacksmith_draining", "1 while draining.", int(v.policy.draining))
        backoff = GaugeMetricFamily(
            "blacksmith_pool_start_backoff_until_timestamp_seconds",
            "No VM is started in the pool before then (its starts keep failing); 0: not held.",
            labels=["pool"],
        )
        for pool in v.policy.pools:
            held = v.backoff.get(pool.name)
            backoff.add_metric([pool.name], held.next_try_at if held else 0)
        yield backoff
        unhealthy = GaugeMetricFamily(
            "blacksmith_github_repository_healthy",
            "1 when the repository can be polled, 0 when GitHub refuses it (404, 403).",
            labels=["repository"],
        )
        for repo in v.repositories:
            unhealthy.add_metric([repo.name], int(repo.healthy))
        yield unhealthy
        yield from _host_metrics(v)
        g = v.github
        if g.rate_limit_remaining is not None:
            yield _gauge(
                "blacksmith_github_rate_limit_remaining",
                "Requests left in GitHub's window.",
                g.rate_limit_remaining,
            )
        if g.rate_limit_reset_at is not None:
            yield _gauge(
                "blacksmith_github_rate_limit_reset_timestamp_seconds",
                "When GitHub's window resets.",
                g.rate_limit_reset_at,
            )
        yield _gauge(
            "blacksmith_github_blocked_until_timestamp_seconds",
            "No GitHub calls until then (0: not blocked).",
            g.blocked_until or 0,
        )
        requests = CounterMetricFamily(
            "blacksmith_github_requests", "GitHub REST requests sent.", labels=["answer"]
        )
        requests.add_metric(["not_modified"], g.not_modified)
        requests.add_metric(["other"], g.requests - g.not_modified)
        yield requests
        if v.loop.last_tick_at is not None:
            yield _gauge(
                "blacksmith_loop_last_tick_timestamp_seconds", "Last tick end.", v.loop.last_tick_at
            )
            yield _gauge(
                "blacksmith_loop_lag_seconds",
                "Seconds since the last tick ended.",
                max(0.0, time.time() - v.loop.last_tick_at),
            )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _host_metrics(v: view_mod.View) -> Iterator[Metric]:
    """Per host (many hosts only): up, VMs, reserved and offered vCPUs and memory, and the
    seconds since its agent last reported."""
    if v.hosts is None:
        return
    now = time.time()
    families = {
        "up": GaugeMetricFamily(
            "blacksmith_host_up", "1 while the host takes VMs (up), else 0.", labels=["host"]
        ),
        "state": GaugeMetricFamily(
            "blacksmith_host_state", "1 for the host's state.", labels=["host", "state"]
        ),
        "vms": GaugeMetricFamily("blacksmith_host_vms", "Active VMs on the host.", labels=["host"]),
        "reserved_vcpus": GaugeMetricFamily(
            "blacksmith_host_reserved_vcpus", "vCPUs its active VMs hold.", labels=["host"]
        ),
        "vcpus": GaugeMetricFamily(
            "blacksmith_host_vcpus", "vCPUs the host offers.", labels=["host"]
        ),
        "reserved_memory": GaugeMetricFamily(
            "blacksmith_host_reserved_memory_bytes", "Memory its VMs hold.", labels=["host"]
        ),
        "memory": GaugeMetricFamily(
            "blacksmith_host_memory_bytes", "Memory the host offers.", labels=["host"]
        ),
        "age": GaugeMetricFamily(
            "blacksmith_host_heartbeat_age_seconds",
            "Seconds since its agent last reported.",
            labels=["host"],
        ),
    }
    active = [vm for vm in v.active_vms if vm.host is not None]
    for host in v.hosts.hosts:
        mine = [vm for vm in active if vm.host == host.name]
        families["up"].add_metric([host.name], int(host.state.value == "up"))
        families["state"].add_metric([host.name, host.state.value], 1)
        families["vms"].add_metric([host.name], len(mine))
        families["reserved_vcpus"].add_metric([host.name], sum(vm.vcpus for vm in mine))
        families["vcpus"].add_metric([host.name], host.vcpus)
        reserved = sum(vm.memory_mib for vm in mine) * 1024 * 1024
        families["reserved_memory"].add_metric([host.name], reserved)
        families["memory"].add_metric([host.name], host.memory_mib * 1024 * 1024)
        seen = v.hosts.last_seen.get(host.name)
        if seen is not None:
            families["age"].add_metric([host.name], max(0.0, now - seen))
    yield from families.values()
