"""``GET /api/usage`` and ``GET /api/usage.csv``: VM-seconds, vCPU-seconds and cost per
repository, workflow or day, from the store's VMs (``store/usage.py``).

Both take ``since`` and ``until`` (UTC days as ``YYYY-MM-DD``, both included; by default the
last 7 days up to today) and an optional ``group_by``. A malformed date or an unknown
``group_by`` is FastAPI's 422; a range whose ``since`` is after its ``until`` holds no days, so
it answers no rows. Cost is vCPU-seconds / 3600 x the ``usage.cost_per_vcpu_hour`` setting.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import time
from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.api.usage_schemas import (
    CSV_COLUMNS,
    IsoDate,
    UsageGroupBy,
    UsageResponse,
    UsageRowOut,
    UsageTotals,
)
from blacksmith_mini.store.usage import UsageRow

router = APIRouter(tags=["usage"])
DEFAULT_DAYS = 7
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these


class CsvResponse(Response):
    media_type = "text/csv"


# The access control answers JSON whatever the route's media type: say so, not text/csv.
JSON_READ_ERRORS = {
    status: {
        "description": answer["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for status, answer in schemas.READ_ERRORS.items()
}


@dataclasses.dataclass(frozen=True, slots=True)
class UsageReport:
    """One answer of either endpoint: its range, grouping, price and rows."""

    since: datetime.date
    until: datetime.date
    group_by: UsageGroupBy | None
    cost_per_vcpu_hour: float
    rows: list[UsageRowOut]

    def response(self) -> UsageResponse:
        """The JSON answer, with totals summed over the rows."""
        totals = UsageTotals(
            vm_seconds=round(sum(row.vm_seconds for row in self.rows), 3),
            vcpu_seconds=round(sum(row.vcpu_seconds for row in self.rows), 3),
            cost=round(sum(row.cost for row in self.rows), 6),
        )
        return UsageResponse(
            since=self.since,
            until=self.until,
            group_by=self.group_by,
            cost_per_vcpu_hour=self.cost_per_vcpu_hour,
            rows=self.rows,
            totals=totals,
        )


SinceQuery = Annotated[
    IsoDate | None,
    Query(description="First UTC day (YYYY-MM-DD), included; default: 6 days before `until`."),
]
UntilQuery = Annotated[
    IsoDate | None, Query(description="Last UTC day (YYYY-MM-DD), included; default: today.")
]
GroupByQuery = Annotated[
    UsageGroupBy | None,
    Query(
        description="Sum the rows per repository, per (repository, workflow) or per day; "
        "omitted: one row per day, repository and workflow."
    ),
]


async def usage_report(
    runtime: RuntimeDep,
    *,
    since: SinceQuery = None,
    until: UntilQuery = None,
    group_by: GroupByQuery = None,
) -> UsageReport:
    """The usage the query asks for, read from the store and grouped."""
    now = time.time()
    last = until or datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    first = since or _days_before(last, DEFAULT_DAYS - 1)
    price = runtime.settings.usage.cost_per_vcpu_hour
    found = await runtime.store.usage(since=first, until=last, now=now)
    return UsageReport(
        since=first,
        until=last,
        group_by=group_by,
        cost_per_vcpu_hour=price,
        rows=_grouped(found, group_by=group_by, price=price),
    )


UsageReportDep = Annotated[UsageReport, Depends(usage_report)]


@router.get("/api/usage", response_model=UsageResponse, responses=schemas.READ_ERRORS)
async def get(report: UsageReportDep) -> UsageResponse:
    """VM-seconds, vCPU-seconds and cost per repository, workflow or day, with totals. A VM
    that ran a job counts for the job's repository and workflow, one that ran none for its
    scope as `(idle)`, a running VM up to now, and a VM alive across midnight on both days."""
    return report.response()


@router.get(
    "/api/usage.csv",
    name="csv",
    response_class=CsvResponse,
    responses={
        **JSON_READ_ERRORS,
        200: {
            "description": "The rows of `GET /api/usage` as CSV, after a header line: "
            + ",".join(CSV_COLUMNS)
            + ". Keys the rows are not grouped by are empty.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def csv_export(report: UsageReportDep) -> CsvResponse:
    """The same rows as `GET /api/usage` (no totals), as a CSV download."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        writer.writerow(
            [
                row.day.isoformat() if row.day else "",
                _cell(row.repository),
                _cell(row.workflow),
                row.vm_seconds,
                row.vcpu_seconds,
                row.cost,
            ]
        )
    name = f"usage-{report.since.isoformat()}-{report.until.isoformat()}.csv"
    return CsvResponse(
        out.getvalue(), headers={"content-disposition": f'attachment; filename="{name}"'}
    )


def _days_before(day: datetime.date, days: int) -> datetime.date:
    """``day`` minus ``days`` days, or the first date there is."""
    if day.toordinal() <= days:
        return datetime.date.min
    return day - datetime.timedelta(days=days)


def _grouped(
    rows: Iterable[UsageRow], *, group_by: UsageGroupBy | None, price: float
) -> list[UsageRowOut]:
    """Sum ``rows`` per group: days in order, repositories and workflows biggest first."""
    sums: dict[tuple[str | None, str | None, str | None], list[float]] = {}
    for row in rows:
        day: str | None = row.day
        repository: str | None = row.repository
        workflow: str | None = row.workflow
        if group_by == "repository":
            day = workflow = None
        elif group_by == "workflow":
            day = None
        elif group_by == "day":
            repository = workflow = None
        found = sums.setdefault((day, repository, workflow), [0.0, 0.0])
        found[0] += row.vm_seconds
        found[1] += row.vcpu_seconds
    keys = list(sums)
    if group_by in ("repository", "workflow"):
        keys.sort(key=lambda key: (-sums[key][1], key[1] or "", key[2] or ""))
    return [
        UsageRowOut(
            day=datetime.date.fromisoformat(key[0]) if key[0] else None,
            repository=key[1],
            workflow=key[2],
            vm_seconds=round(sums[key][0], 3),
            vcpu_seconds=round(sums[key][1], 3),
            cost=round(sums[key][1] / 3600 * price, 6),
        )
        for key in keys
    ]


def _cell(value: str | None) -> str:
    """A text cell a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    return f"'{value}" if value.startswith(FORMULA_PREFIXES) else value
