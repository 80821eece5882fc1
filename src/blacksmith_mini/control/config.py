"""The control loop's settings, as the composition root hands them over (immutable)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    tick_interval: float = 1.0
    tick_duty: float = 0.5  # at most this share of a core computing ticks (``pacing``)
    github_poll_interval: float = 5.0
    sample_interval: float = 60.0
    runner_prefix: str = "bm"
    runner_group_id: int = 1
    runner_group: str | None = None  # organization scope: looked up by name at start-up
    ssh_public_key: str | None = None
    simulate: bool = False
    on_shutdown: str = "leave"  # "leave" (VMs keep running for adoption) or "drain"
    drain_seconds: float = 4.0
    prune_interval: float = 3600.0
    lag_allowance: float = 60.0  # how long GitHub may lag a runner's news (see Snapshot)
    # The boot data's ``cache`` for a VM (url, token, fallback_url), or None: no cache.
    cache_boot: Callable[[int], Mapping[str, str] | None] | None = None
