"""The ``[simulator]`` settings: the fake GitHub's workload, webhooks and injected faults."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SimulatorSettings(BaseModel):
    rate_per_min: float = Field(default=6.0, ge=0, description="Jobs queued per minute; 0 = off.")
    failure_ratio: float = Field(default=0.1, ge=0, le=1)
    min_duration: float = Field(default=3.0, ge=0)
    max_duration: float = Field(default=20.0, ge=0)
    seed: int | None = None
    repositories: list[str] = Field(default_factory=lambda: ["acme/app", "acme/infra"])
    webhooks: bool = Field(default=True, description="Send signed webhooks to our endpoint.")
    webhook_drop_ratio: float = Field(default=0.0, ge=0, le=1)
    webhook_duplicate_ratio: float = Field(default=0.0, ge=0, le=1)
    webhook_max_delay: float = Field(default=0.0, ge=0, description="Seconds; reorders.")
    app_auth: bool = Field(default=False, description="Authenticate as a simulated GitHub App.")
    vm_start_failure_every: int = Field(
        default=0, ge=0, description="Fault injection: every N-th VM start fails (0: never)."
    )
    token_ttl_seconds: float = Field(default=3600.0, gt=0)
    lag_seconds: float = Field(
        default=2.0,
        ge=0,
        le=600,
        description="GitHub's REST answers (runner busy, job status) lag the runners by this "
        "much, as the real GitHub's do (tens of seconds at worst); 0: no lag.",
    )
    label_mix: list[list[str]] = Field(
        default_factory=lambda: (
            [["self-hosted", "linux", "x64"]] * 4
            + [["self-hosted", "Linux"], ["self-hosted", "linux", "x64", "large"]]
        ),
        description="runs-on label sets the generator picks from, uniformly.",
    )
