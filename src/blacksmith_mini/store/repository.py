"""The store the control loop and the API use: domain values in, domain values out.

Every write is its own short transaction, so a crash loses at most the act in flight, and the
act is idempotent by the name persisted first (``create_vm`` commits the runner name before any
GitHub call is made). Every write begins with ``_write()``: a leader's view of the store
(``fenced``) checks its lease there, in the same transaction (``store.lease``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from blacksmith_mini.domain import model
from blacksmith_mini.store import beatcache, beatgroup, tables
from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.store.deliveries import DeliveryStore
from blacksmith_mini.store.hosts import HostStore
from blacksmith_mini.store.records import UNRATED_CONCLUSIONS, Counters, Event, Sample
from blacksmith_mini.store.samples import SampleStore
from blacksmith_mini.store.usage import UsageStore

__all__ = ["UNRATED_CONCLUSIONS", "Counters", "Event", "Sample", "Store"]


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
        host=row.host,
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
        "host": vm.host,
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


class Store(DeliveryStore, SampleStore, UsageStore, HostStore):
    """Async repository over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, search_path: str | None = None) -> None:
        """A store of database ``url`` (``search_path``: a PostgreSQL schema, for tests)."""
        self.url = engine_mod.normalize_url(url)
        self.engine: AsyncEngine = engine_mod.create_engine(self.url, search_path=search_path)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._beats = beatcache.BeatCache()
        self._decoded = {}
        self._read = {}
        self._fragments = {}
        self._group = beatgroup.BeatGroup(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def open(self) -> None:
        await engine_mod.migrate(self.engine)

    async def close(self) -> None:
        await self._group.close()
        await self.engine.dispose()

    async def ping(self) -> bool:
        async with self._sessions() as session:
            await session.execute(select(1))
        return True

    # --- VMs -------------------------------------------------------------------------------

    async def create_vm(
        self, *, pool: model.Pool, scope: str, prefix: str, now: float, host: str | None = None
    ) -> model.Vm:
        """Persist a new pending VM, its host and its unique runner name, before any external
        call."""
        async with self._write() as session:
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
                host=host,
            )
            session.add(row)
            await session.flush()
            row.name = f"{prefix}-{row.vm_id}-{secrets.token_hex(3)}"
        return _vm(row)

    async def save_vm(self, vm: model.Vm) -> None:
        async with self._write() as session:
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
        async with self._write() as session:
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

    async def job_arrivals(
        self, *, windows: Sequence[tuple[float, float]]
    ) -> list[tuple[float, tuple[str, ...]]]:
        """When each job created in one of ``windows`` (start, end] was, with its labels."""
        row = tables.JobRow
        within = [row.created_at.between(start, end) for start, end in windows]
        async with self._sessions() as session:
            found = await session.execute(select(row.created_at, row.labels).where(or_(*within)))
            return [(float(at), tuple(labels or ())) for at, labels in found.all()]

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
        async with self._write() as session:
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
