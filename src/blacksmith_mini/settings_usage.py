"""The ``[usage]`` settings: what a vCPU-hour costs, for the usage report's cost column."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsageSettings(BaseModel):
    """Pricing for ``GET /api/usage``: cost = vCPU-seconds / 3600 x ``cost_per_vcpu_hour``."""

    cost_per_vcpu_hour: float = Field(
        default=0.0,
        ge=0,
        allow_inf_nan=False,
        description="Cost of one vCPU-hour, in the operator's currency; 0: no cost shown.",
    )
