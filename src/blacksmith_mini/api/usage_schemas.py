"""Models of ``GET /api/usage`` (and the query parameters ``GET /api/usage.csv`` shares)."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

UsageGroupBy = Literal["repository", "workflow", "day"]
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    """Only ``YYYY-MM-DD``: pydantic alone would also take ``0`` or a datetime as a date."""
    if isinstance(value, str) and not ISO_DATE.fullmatch(value):
        raise ValueError(f"expected a date as YYYY-MM-DD (UTC), got {value!r}")
    return value


IsoDate = Annotated[datetime.date, BeforeValidator(_iso_date)]


class UsageRowOut(BaseModel):
    """Usage of one group. The keys the rows are not grouped by are null: grouped by
    `repository` only `repository` is set, by `workflow` `repository` and `workflow`, by `day`
    only `day`; ungrouped rows have all three."""

    day: datetime.date | None = Field(description="UTC day (YYYY-MM-DD).")
    repository: str | None = Field(
        description="The job's repository; for a VM that ran no job, its scope "
        "(`owner/repo` or `org:NAME`)."
    )
    workflow: str | None = Field(
        description="The job's workflow; `(idle)` for VMs that ran no job (warm pool, failed "
        "starts), `(unnamed)` for a job whose workflow GitHub did not name."
    )
    vm_seconds: float = Field(ge=0, description="Seconds VMs were alive.")
    vcpu_seconds: float = Field(ge=0, description="VM-seconds times each VM's vCPUs.")
    cost: float = Field(ge=0, description="vcpu_seconds / 3600 x cost_per_vcpu_hour.")


class UsageTotals(BaseModel):
    """The sums over every row."""

    vm_seconds: float = Field(ge=0)
    vcpu_seconds: float = Field(ge=0)
    cost: float = Field(ge=0)


class UsageResponse(BaseModel):
    """VM-seconds, vCPU-seconds and cost from `since` to `until` (UTC days, both included)."""

    since: datetime.date
    until: datetime.date
    group_by: UsageGroupBy | None = Field(description="Null: one row per day, repo and workflow.")
    cost_per_vcpu_hour: float = Field(ge=0, description="The `usage.cost_per_vcpu_hour` setting.")
    rows: list[UsageRowOut]
    totals: UsageTotals


CSV_COLUMNS = ("day", "repository", "workflow", "vm_seconds", "vcpu_seconds", "cost")
