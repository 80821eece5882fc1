"""Per-repository cache counters the control plane reads (and may export to Prometheus).

Updated as things happen, on the event loop that serves the cache: lookups that hit (exactly
or through a restore key) or missed, bytes received and served, entries saved, saves refused
because the key was taken, evictions, corrupt entries removed, requests denied by scope.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class RepositoryCounters:
    hits: int = 0
    restore_key_hits: int = 0
    misses: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    saves: int = 0
    conflicts: int = 0
    evictions: int = 0
    evicted_bytes: int = 0
    corrupt: int = 0
    denied: int = 0

    @property
    def hit_rate(self) -> float | None:
        """Hits (exact or restore-key) over lookups, or None before the first lookup."""
        lookups = self.hits + self.misses
        return None if lookups == 0 else self.hits / lookups


class CacheMetrics:
    """Counters by repository; ``snapshot`` gives plain dicts with the hit rate."""

    def __init__(self) -> None:
        self._by_repository: dict[str, RepositoryCounters] = {}

    def of(self, repository: str) -> RepositoryCounters:
        found = self._by_repository.get(repository)
        if found is None:
            found = self._by_repository[repository] = RepositoryCounters()
        return found

    def repositories(self) -> list[str]:
        return sorted(self._by_repository)

    def snapshot(self) -> dict[str, dict[str, float | int | None]]:
        found: dict[str, dict[str, float | int | None]] = {}
        for repository in self.repositories():
            counters = self._by_repository[repository]
            row: dict[str, float | int | None] = dict(asdict(counters))
            row["hit_rate"] = counters.hit_rate
            found[repository] = row
        return found
