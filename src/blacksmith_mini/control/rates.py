"""The seed's headline metrics, computed from recorded events, never invented.

- spawn_rate_per_min / death_rate_per_min: VMs started (``vm.requested`` events) / VMs gone
  (``vm.gone``) in the last ``WINDOW_SECONDS``, divided by the minutes observed: the window, or
  the time since data began if shorter (at least one minute, so one early spawn does not read
  as 60/min). Null before the loop has run once.
- pool_saturation_percent: active VMs / max_vms * 100 now; null when max_vms is 0.
- success_rate_percent: completed jobs with conclusion ``success`` / completed jobs except
  ``cancelled`` and ``skipped``, over all history kept in the store; null with no such job.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

WINDOW_SECONDS = 300.0
MIN_SPAN_SECONDS = 60.0


class EventRate:
    """Timestamps of one kind of event within the window."""

    def __init__(self, times: Iterable[float] = ()) -> None:
        self._times: collections.deque[float] = collections.deque(sorted(times))

    def add(self, at: float) -> None:
        self._times.append(at)

    def count_since(self, since: float) -> int:
        return sum(1 for at in self._times if at >= since)

    def per_minute(self, *, now: float, data_since: float | None) -> float | None:
        if data_since is None:
            return None
        while self._times and self._times[0] < now - WINDOW_SECONDS:
            self._times.popleft()
        span = max(MIN_SPAN_SECONDS, min(WINDOW_SECONDS, now - data_since))
        return round(len(self._times) / (span / 60.0), 2)


def saturation(active: int, max_vms: int) -> float | None:
    if max_vms <= 0:
        return None
    return round(100.0 * active / max_vms, 1)


def success_rate(*, successful: int, rated: int) -> float | None:
    if rated <= 0:
        return None
    return round(100.0 * successful / rated, 1)


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 3)
