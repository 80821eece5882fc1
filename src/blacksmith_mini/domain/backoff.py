"""Per-pool start back-off: a start that keeps failing is retried ever later, never in a storm.

Without it a pool whose starts always fail (a missing kernel, a 403 or 404 from GitHub, a runner
group that is full) would register a new runner every tick: ~1,800 an hour per stuck job, until
GitHub blocks the token. A failure doubles the wait from ``FIRST_SECONDS`` up to ``MAX_SECONDS``;
a successful start clears it. Pure values; the control loop keeps one per pool.
"""

from __future__ import annotations

import dataclasses

FIRST_SECONDS = 5.0
MAX_SECONDS = 600.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoolBackoff:
    """Starts in ``pool`` failed ``failures`` times in a row; next attempt at ``next_try_at``."""

    pool: str
    failures: int
    reason: str
    since: float
    next_try_at: float

    def blocks(self, now: float) -> bool:
        return now < self.next_try_at

    def describe(self, now: float) -> str:
        wait = max(0.0, self.next_try_at - now)
        count = f" ({self.failures} in a row)" if self.failures else ""
        return (
            f"VM starts failing in pool {self.pool}{count}: {self.reason}; next try in {wait:.0f}s"
        )


def delay(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 -> FIRST_SECONDS)."""
    if failures <= 0:
        return 0.0
    return float(min(MAX_SECONDS, FIRST_SECONDS * 2 ** min(failures - 1, 30)))


def after_failure(
    previous: PoolBackoff | None,
    *,
    pool: str,
    reason: str,
    now: float,
    not_before: float | None = None,
) -> PoolBackoff:
    """The back-off once another start in ``pool`` failed at ``now``. ``not_before``: GitHub
    said when to come back (a rate limit): then exactly then, and the failure does not
    lengthen later waits."""
    if not_before is not None:
        failures = previous.failures if previous else 0
        next_try = max(not_before, now + FIRST_SECONDS)
    else:
        failures = (previous.failures if previous else 0) + 1
        next_try = now + delay(failures)
    return PoolBackoff(
        pool=pool,
        failures=failures,
        reason=reason,
        since=previous.since if previous else now,
        next_try_at=next_try,
    )


def attempts_per_hour_bound() -> float:
    """The most start attempts one failing pool can make in an hour once backed off fully."""
    return 3600.0 / MAX_SECONDS
