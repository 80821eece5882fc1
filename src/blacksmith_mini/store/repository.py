"""The store the control loop and the API use: domain values in, domain values out.

Every write is its own short transaction, so a crash loses at most the act in flight, and the
act is idempotent by the name persisted first (``create_vm`` commits the runner name before any
GitHub call is made).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from blacksmith_mini.domain import model
from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.store import tables


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event:
    id: int
    at: float
    kind: str
    vm_id: int | None
    job_id: int | None
    message: str
    actor: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sample:
    at: float
    step_seconds: int
    active_vms: float
    queued_jobs: float
    spawns: float
    deaths: float
    queue_to_start_p50: float | None
    queue_to_start_p95: float | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Counters:
    completed_jobs: int
    successful_jobs: int
    rated_jobs: int  # completed jobs whose conclusion counts toward the success rate


UNRATED_CONCLUSIONS = ("cancelled", "skipped")


def _vm(row: tables.VmRow) -> model.Vm:
    return model.Vm(
        vm_id=row.vm_id,
        name=row.name,
        pool=row.pool,
        scope=row.scope,
        labels=tuple(row.labels),
        vcpus=row.vcpus,
        memory_mib=row.memory_mib,
        state=model.VmState(row.state),
        state_since=row.state_since,
        created_at=row.created_at,
        ready_at=row.ready_at,
        ended_at=row.ended_at,
        job_id=row.job_id,
        pid=row.pid,
        ip=row.ip,
        death_reason=model.DeathReason(row.death_reason) if row.death_reason else None,
        stop_reason=model.DeathReason(row.stop_reason) if row.stop_reason else None,
        runner_id=row.runner_id,
        ran_job=row.ran_job,
    )


def _vm_values(vm: model.Vm) -> dict[str, object]:
    return {
        "name": vm.name,
        "pool": vm.pool,
        "scope": vm.scope,
        "labels": list(vm.labels),
        "vcpus": vm.vcpus,
        "memory_mib": vm.memory_mib,
        "state": vm.state.value,
        "state_since": vm.state_since,
        "created_at": vm.created_at,
        "ready_at": vm.ready_at,
        "ended_at": vm.ended_at,
        "job_id": vm.job_id,
        "pid": vm.pid,
        "ip": vm.ip,
        "death_reason": vm.death_reason.value if vm.death_reason else None,
        "stop_reason": vm.stop_reason.value if vm.stop_reason else None,
        "runner_id": vm.runner_id,
        "ran_job": vm.ran_job,
    }


def _job(row: tables.JobRow) -> model.Job:
    return model.Job(
        id=row.id,
        run_id=row.run_id,
        run_attempt=row.run_attempt,
        repository=row.repository,
        labels=tuple(row.labels),
        status=model.JobStatus(row.status),
        conclusion=row.conclusion,
        name=row.name,
        workflow_name=row.workflow_name,
        runner_name=row.runner_name,
        html_url=row.html_url,
        created_at=row.created_at,
        started_at=row.started_at,
        completed_at=row.completed_at,
        vm_requested_at=row.vm_requested_at,
        vm_ready_at=row.vm_ready_at,
        vm_id=row.vm_id,
    )


def _job_values(job: model.Job) -> dict[str, object]:
    return {
        "run_id": job.run_id,
        "run_attempt": job.run_attempt,
        "repository": job.repository,
        "labels": list(job.labels),
        "status": job.status.value,
        "conclusion": job.conclusion,
        "name": job.name,
        "workflow_name": job.workflow_name,
        "runner_name": job.runner_name,
        "html_url": job.html_url,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "vm_requested_at": job.vm_requested_at,
        "vm_ready_at": job.vm_ready_at,
        "vm_id": job.vm_id,
    }


def _event(row: tables.EventRow) -> Event:
    return Event(
        id=row.id,
        at=row.at,
        kind=row.kind,
        vm_id=row.vm_id,
        job_id=row.job_id,
        message=row.message,
        actor=row.actor,
    )


class Store:
    """Async repository over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.url = engine_mod.normalize_url(url)
        self.engine: AsyncEngine = engine_mod.create_engine(self.url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def open(self) -> None:
        await engine_mod.migrate(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> bool:
        async with self._sessions() as session:
            await session.execute(select(1))
        return True

    # --- VMs -------------------------------------------------------------------------------

    async def create_vm(self, *, pool: model.Pool, scope: str, prefix: str, now: float) -> model.Vm:
        """Persist a new pending VM and its unique runner name, before any external call."""
        async with self._sessions.begin() as session:
            row = tables.VmRow(
                name=f"{prefix}-tmp-{secrets.token_hex(8)}",
                pool=pool.name,
                scope=scope,
                labels=list(pool.registration_labels()),
                vcpus=pool.vcpus,
                memory_mib=pool.memory_mib,
                state=model.VmState.PENDING.value,
                state_since=now,
                created_at=now,
                ran_job=False,
            )
            session.add(row)
            await session.flush()
            row.name = f"{prefix}-{row.vm_id}-{secrets.token_hex(3)}"
        return _vm(row)

    async def save_vm(self, vm: model.Vm) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(tables.VmRow).where(tables.VmRow.vm_id == vm.vm_id).values(**_vm_values(vm))
            )

    async def active_vms(self) -> list[model.Vm]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(tables.VmRow)
                .where(tables.VmRow.state != model.VmState.GONE.value)
                .order_by(tables.VmRow.vm_id)
            )
            return [_vm(row) for row in rows]

    async def vm(self, vm_id: int) -> model.Vm | None:
        async with self._sessions() as session:
            row = await session.get(tables.VmRow, vm_id)
            return _vm(row) if row else None

    async def recent_vms(self, *, limit: int) -> list[model.Vm]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(tables.VmRow).order_by(tables.VmRow.vm_id.desc()).limit(limit)
            )
            return [_vm(row) for row in rows]

    # --- jobs ------------------------------------------------------------------------------

    async def save_jobs(self, jobs: Iterable[model.Job]) -> None:
        jobs = list(jobs)
        if not jobs:
            return
        async with self._sessions.begin() as session:
            existing = set(
                await session.scalars(
                    select(tables.JobRow.id).where(tables.JobRow.id.in_([j.id for j in jobs]))
                )
            )
            for job in jobs:
                if job.id in existing:
                    await session.execute(
                        update(tables.JobRow)
                        .where(tables.JobRow.id == job.id)
                        .values(**_job_values(job))
                    )
                else:
                    session.add(tables.JobRow(id=job.id, **_job_values(job)))

    async def open_jobs(self) -> list[model.Job]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(tables.JobRow).where(tables.JobRow.status != model.JobStatus.COMPLETED.value)
            )
            return [_job(row) for row in rows]

    async def recent_jobs(self, *, limit: int) -> list[model.Job]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(tables.JobRow).order_by(tables.JobRow.created_at.desc()).limit(limit)
            )
            return [_job(row) for row in rows]

    async def job(self, job_id: int) -> model.Job | None:
        async with self._sessions() as session:
            row = await session.get(tables.JobRow, job_id)
            return _job(row) if row else None

    async def counters(self) -> Counters:
        async with self._sessions() as session:
            completed = tables.JobRow.status == model.JobStatus.COMPLETED.value
            total = await session.scalar(select(func.count()).where(completed))
            rated = await session.scalar(
                select(func.count()).where(
                    completed, tables.JobRow.conclusion.not_in(UNRATED_CONCLUSIONS)
                )
            )
            ok = await session.scalar(
                select(func.count()).where(completed, tables.JobRow.conclusion == "success")
            )
        return Counters(completed_jobs=total or 0, successful_jobs=ok or 0, rated_jobs=rated or 0)

    async def queue_to_start_seconds(self, *, since: float, until: float) -> list[float]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(tables.JobRow.created_at, tables.JobRow.started_at).where(
                    tables.JobRow.started_at >= since, tables.JobRow.started_at < until
                )
            )
            return [
                max(0.0, started - created)
                for created, started in rows.all()
                if started is not None
            ]

    # --- events ----------------------------------------------------------------------------

    async def add_event(
        self,
        *,
        kind: str,
        message: str,
        at: float,
        vm_id: int | None = None,
        job_id: int | None = None,
        actor: str = "system",
    ) -> None:
        async with self._sessions.begin() as session:
            session.add(
                tables.EventRow(
                    at=at, kind=kind, vm_id=vm_id, job_id=job_id, message=message, actor=actor
                )
            )

    async def events(
        self,
        *,
        vm_id: int | None = None,
        job_id: int | None = None,
        kind_prefix: str | None = None,
        limit: int = 200,
    ) -> list[Event]:
        query = select(tables.EventRow).order_by(tables.EventRow.id.desc()).limit(limit)
        if kind_prefix is not None:
            query = query.where(tables.EventRow.kind.startswith(kind_prefix, autoescape=True))
        if vm_id is not None:
            query = query.where(tables.EventRow.vm_id == vm_id)
        if job_id is not None:
            query = query.where(tables.EventRow.job_id == job_id)
        async with self._sessions() as session:
            return [_event(row) for row in reversed(list(await session.scalars(query)))]

    async def event_times(self, *, kinds: Sequence[str], since: float) -> dict[str, list[float]]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(tables.EventRow.kind, tables.EventRow.at).where(
                    tables.EventRow.kind.in_(kinds), tables.EventRow.at >= since
                )
            )
            found: dict[str, list[float]] = {kind: [] for kind in kinds}
            for kind, at in rows.all():
                found[kind].append(at)
            return found

    # --- webhook deliveries ----------------------------------------------------------------

    async def record_delivery(
        self, *, delivery_id: str, event: str, action: str | None, payload: str, at: float
    ) -> bool:
        """Persist a delivery before it is acknowledged; False if its id was seen already."""
        try:
            async with self._sessions.begin() as session:
                session.add(
                    tables.WebhookDeliveryRow(
                        delivery_id=delivery_id,
                        event=event,
                        action=action,
                        received_at=at,
                        payload=payload,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def pending_deliveries(self, *, limit: int = 500) -> list[tuple[str, str, str]]:
        """Deliveries received but not processed yet: (id, event, payload), oldest first."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(
                    tables.WebhookDeliveryRow.delivery_id,
                    tables.WebhookDeliveryRow.event,
                    tables.WebhookDeliveryRow.payload,
                )
                .where(tables.WebhookDeliveryRow.processed_at.is_(None))
                .order_by(tables.WebhookDeliveryRow.received_at)
                .limit(limit)
            )
            return [(row[0], row[1], row[2]) for row in rows.all()]

    async def mark_processed(self, delivery_ids: Sequence[str], *, at: float) -> None:
        if not delivery_ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(tables.WebhookDeliveryRow)
                .where(tables.WebhookDeliveryRow.delivery_id.in_(list(delivery_ids)))
                .values(processed_at=at)
            )

    async def known_deliveries(self, delivery_ids: Sequence[str]) -> set[str]:
        async with self._sessions() as session:
            found = await session.scalars(
                select(tables.WebhookDeliveryRow.delivery_id).where(
                    tables.WebhookDeliveryRow.delivery_id.in_(list(delivery_ids))
                )
            )
            return set(found)

    async def last_delivery_at(self) -> float | None:
        async with self._sessions() as session:
            value = await session.scalar(select(func.max(tables.WebhookDeliveryRow.received_at)))
            return float(value) if value is not None else None

    # --- operator control state ------------------------------------------------------------

    async def control_state(self) -> dict[str, dict[str, Any]]:
        async with self._sessions() as session:
            rows = await session.scalars(select(tables.ControlStateRow))
            return {row.key: dict(row.value) for row in rows}

    async def set_control_state(self, key: str, value: dict[str, Any], *, at: float) -> None:
        async with self._sessions.begin() as session:
            row = await session.get(tables.ControlStateRow, key)
            if row is None:
                session.add(tables.ControlStateRow(key=key, value=value, updated_at=at))
            else:
                row.value, row.updated_at = value, at

    # --- retention ---------------------------------------------------------------------------

    async def prune(self, *, now: float, events_days: float = 30.0) -> dict[str, int]:
        """Roll metric samples up and drop old ones and old events, so the database stays
        bounded: raw (60 s) samples for 2 days, 15-minute rollups for 14 days, 3-hour
        rollups for 90 days; events for ``events_days``."""
        removed = {"events": 0, "samples": 0}
        for older_than, step in ((2 * 86400, 900), (14 * 86400, 10800)):
            removed["samples"] += await self._roll_up(before=now - older_than, step=step)
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(tables.SampleRow).where(tables.SampleRow.at < now - 90 * 86400)
            )
            removed["samples"] += getattr(result, "rowcount", 0) or 0
            result = await session.execute(
                delete(tables.EventRow).where(tables.EventRow.at < now - events_days * 86400)
            )
            removed["events"] += getattr(result, "rowcount", 0) or 0
        return removed

    async def _roll_up(self, *, before: float, step: int) -> int:
        """Replace samples older than ``before`` with finer steps than ``step`` by one sample
        per ``step``-second bucket (means of gauges, sums of counts, median p50, max p95)."""
        async with self._sessions.begin() as session:
            rows = list(
                await session.scalars(
                    select(tables.SampleRow).where(
                        tables.SampleRow.at < before, tables.SampleRow.step_seconds < step
                    )
                )
            )
            if not rows:
                return 0
            buckets: dict[int, list[tables.SampleRow]] = {}
            for row in rows:
                buckets.setdefault(int(row.at // step), []).append(row)
            for index, group in buckets.items():
                p50s = sorted(
                    r.queue_to_start_p50 for r in group if r.queue_to_start_p50 is not None
                )
                p95s = [r.queue_to_start_p95 for r in group if r.queue_to_start_p95 is not None]
                session.add(
                    tables.SampleRow(
                        at=float(index * step),
                        step_seconds=step,
                        active_vms=sum(r.active_vms for r in group) / len(group),
                        queued_jobs=sum(r.queued_jobs for r in group) / len(group),
                        spawns=sum(r.spawns for r in group),
                        deaths=sum(r.deaths for r in group),
                        queue_to_start_p50=p50s[len(p50s) // 2] if p50s else None,
                        queue_to_start_p95=max(p95s) if p95s else None,
                    )
                )
            await session.execute(
                delete(tables.SampleRow).where(tables.SampleRow.id.in_([r.id for r in rows]))
            )
            return len(rows) - len(buckets)

    # --- samples ---------------------------------------------------------------------------

    async def add_sample(self, sample: Sample) -> None:
        async with self._sessions.begin() as session:
            session.add(tables.SampleRow(**dataclasses.asdict(sample)))

    async def samples(self, *, since: float) -> list[Sample]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(tables.SampleRow)
                .where(tables.SampleRow.at >= since)
                .order_by(tables.SampleRow.at)
            )
            return [
                Sample(
                    at=row.at,
                    step_seconds=row.step_seconds,
                    active_vms=row.active_vms,
                    queued_jobs=row.queued_jobs,
                    spawns=row.spawns,
                    deaths=row.deaths,
                    queue_to_start_p50=row.queue_to_start_p50,
                    queue_to_start_p95=row.queue_to_start_p95,
                )
                for row in rows
            ]
