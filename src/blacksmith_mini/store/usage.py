"""Usage: VM-seconds and vCPU-seconds per day (UTC), repository and workflow.

One aggregate query does it, on SQLite and PostgreSQL alike: a recursive CTE yields the start of
every day in the range, each VM is joined to the days its life overlaps (so a VM that spans
midnight is split across them), the overlap is measured and summed per (day, repository,
workflow). A VM linked to a job counts for that job's repository and workflow; an unlinked one
(a warm-pool VM that never got a job, a failed start) counts for its scope with the workflow
``(idle)``; a VM that is still running counts up to ``now``. The range is first clipped to the
days that can hold usage (from the first VM's day to today), so the day list stays as short as
the store's history whatever dates are asked for.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime

from sqlalchemy import Float, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from blacksmith_mini.domain import model
from blacksmith_mini.store import tables

DAY_SECONDS = 86400
IDLE_WORKFLOW = "(idle)"
UNNAMED_WORKFLOW = "(unnamed)"


@dataclasses.dataclass(frozen=True, slots=True)
class UsageRow:
    """What one repository's workflow used on one UTC day."""

    day: str  # YYYY-MM-DD, UTC
    repository: str
    workflow: str
    vm_seconds: float
    vcpu_seconds: float


def day_start(day: datetime.date) -> int:
    """Epoch seconds of ``day``'s UTC midnight (any year ``datetime.date`` allows)."""
    return calendar.timegm((day.year, day.month, day.day, 0, 0, 0))


def day_name(start: float) -> str:
    """``YYYY-MM-DD`` of the UTC day starting at epoch second ``start``."""
    days = int(start // DAY_SECONDS)
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=days)).isoformat()


class UsageStore:
    """Mixed into ``repository.Store``: the same sessions."""

    _sessions: async_sessionmaker[AsyncSession]

    async def usage(
        self, *, since: datetime.date, until: datetime.date, now: float
    ) -> list[UsageRow]:
        """Usage per (day, repository, workflow) from ``since`` to ``until``, both included,
        ordered by day, repository and workflow. Days without usage have no row; an inverted
        range has none at all."""
        vms, jobs = tables.VmRow, tables.JobRow
        start = day_start(since)
        end = day_start(until) + DAY_SECONDS
        async with self._sessions() as session:
            first = await session.scalar(select(func.min(vms.created_at)))
            if first is None:
                return []
            start = max(start, int(first // DAY_SECONDS) * DAY_SECONDS)
            end = min(end, (int(now // DAY_SECONDS) + 1) * DAY_SECONDS)
            if start >= end:
                return []
            days = select(cast(literal(float(start)), Float).label("start")).cte(
                "usage_days", recursive=True
            )
            days = days.union_all(
                select((days.c.start + DAY_SECONDS).label("start")).where(
                    days.c.start + DAY_SECONDS < float(end)
                )
            )
            day_end = days.c.start + DAY_SECONDS
            # A gone VM without ended_at (should not happen) ends when it became gone.
            vm_end = func.coalesce(
                vms.ended_at,
                case((vms.state == model.VmState.GONE.value, vms.state_since), else_=now),
            )
            low = case((vms.created_at > days.c.start, vms.created_at), else_=days.c.start)
            high = case((vm_end < day_end, vm_end), else_=day_end)
            linked = jobs.id.is_not(None)
            per_vm_day = (
                select(
                    days.c.start.label("day"),
                    case((linked, jobs.repository), else_=vms.scope).label("repository"),
                    case(
                        (linked, func.coalesce(jobs.workflow_name, UNNAMED_WORKFLOW)),
                        else_=IDLE_WORKFLOW,
                    ).label("workflow"),
                    (high - low).label("seconds"),
                    ((high - low) * vms.vcpus).label("vcpu_seconds"),
                )
                .select_from(vms)
                .join(days, and_(vms.created_at < day_end, vm_end > days.c.start))
                .outerjoin(jobs, jobs.id == vms.job_id)
                .where(high > low)
                .subquery()
            )
            keys = (per_vm_day.c.day, per_vm_day.c.repository, per_vm_day.c.workflow)
            rows = await session.execute(
                select(
                    *keys,
                    func.sum(per_vm_day.c.seconds),
                    func.sum(per_vm_day.c.vcpu_seconds),
                )
                .group_by(*keys)
                .order_by(*keys)
            )
            return [
                UsageRow(
                    day=day_name(day),
                    repository=repository,
                    workflow=workflow,
                    vm_seconds=float(seconds or 0.0),
                    vcpu_seconds=float(vcpu_seconds or 0.0),
                )
                for day, repository, workflow, seconds, vcpu_seconds in rows.all()
            ]
