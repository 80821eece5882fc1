"""The cache's counters as Prometheus metrics, per repository, read at scrape time.

``blacksmith_cache_<counter>_total{repository}`` for every ``RepositoryCounters`` field
(hits, restore_key_hits, misses, bytes_in, bytes_out, saves, conflicts, evictions,
evicted_bytes, corrupt, denied), ``blacksmith_cache_hit_ratio{repository}`` and
``blacksmith_cache_stored_bytes{repository}`` (committed bytes now).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from blacksmith_mini.cache.metrics import RepositoryCounters
from blacksmith_mini.cache.service import CacheService

COUNTERS = tuple(field.name for field in dataclasses.fields(RepositoryCounters))


class CacheCollector(Collector):
    def __init__(self, service: CacheService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        snapshot = self.service.metrics.snapshot()
        for name in COUNTERS:
            family = CounterMetricFamily(
                f"blacksmith_cache_{name}",
                f"Actions cache {name.replace('_', ' ')} per repository",
                labels=["repository"],
            )
            for repository, row in snapshot.items():
                family.add_metric([repository], float(row[name] or 0))
            yield family
        ratio = GaugeMetricFamily(
            "blacksmith_cache_hit_ratio",
            "Actions cache hits over lookups per repository",
            labels=["repository"],
        )
        for repository, row in snapshot.items():
            if row["hit_rate"] is not None:
                ratio.add_metric([repository], float(row["hit_rate"]))
        yield ratio
        stored = GaugeMetricFamily(
            "blacksmith_cache_stored_bytes",
            "Committed Actions cache bytes per repository",
            labels=["repository"],
        )
        for repository, size in sorted(self.service.store.usage().items()):
            stored.add_metric([repository], float(size))
        yield stored
