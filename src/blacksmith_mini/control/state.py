"""The loop's in-memory world and the one way to change it: persist first, then memory.

``LoopState`` owns the active and recently gone VMs, the open and recently completed jobs, the
counters and rates, and the pools' start back-off. Nothing else assigns to them: the reconcile
loop, ``acts`` and the view read them and call these methods. Every method writes the store
*before* memory moves, so a write that fails (disk full, database locked) leaves memory as it
was; the next tick sees the same difference and does it again.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable

from blacksmith_mini.control import metrics as metrics_mod
from blacksmith_mini.control import rates
from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import facts as domain_facts
from blacksmith_mini.domain import jobs as domain_jobs
from blacksmith_mini.domain import model, waiting
from blacksmith_mini.store import repository
from blacksmith_mini.vm import driver as vm_driver

RECENT_JOBS = 200
RECENT_GONE_VMS = 50
KEEP_GONE_VMS = 100
CONSUMED_MEMORY_SECONDS = 600.0


class LoopState:
    def __init__(
        self, *, store: repository.Store, metrics: metrics_mod.Metrics, clock: Callable[[], float]
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.jobs: dict[int, model.Job] = {}
        self.vms: dict[int, model.Vm] = {}
        self.gone: list[model.Vm] = []
        self.recent_completed: list[model.Job] = []
        self.runners: tuple[model.RunnerInfo, ...] | None = None  # acted on once, then None
        self.facts: dict[int, vm_driver.VmObservation] = {}
        self._made: dict[int, tuple[vm_driver.VmObservation, domain_facts.VmFacts]] = {}
        self.spawns = rates.EventRate()
        self.deaths = rates.EventRate()
        self.counters = repository.Counters(completed_jobs=0, successful_jobs=0, rated_jobs=0)
        self.data_since: float | None = None
        self.backoff: dict[str, pool_backoff.PoolBackoff] = {}

    @property
    def vms_now(self) -> list[model.Vm]:
        """The active VMs, then the recently gone ones."""
        return [*self.vms.values(), *self.gone]

    async def load(self, *, now: float) -> None:
        """What an earlier run left in the store."""
        store = self.store
        self.vms = {vm.vm_id: vm for vm in await store.active_vms()}
        self.jobs = {job.id: job for job in await store.open_jobs()}
        self.recent_completed = [
            job for job in await store.recent_jobs(limit=RECENT_JOBS) if not job.is_open
        ]
        self.gone = [vm for vm in await store.recent_vms(limit=RECENT_GONE_VMS) if not vm.is_active]
        self.counters = await store.counters()
        history = await store.event_times(
            kinds=("vm.requested", "vm.gone", "loop.started"), since=0.0
        )
        window_start = now - rates.WINDOW_SECONDS
        self.spawns = rates.EventRate(t for t in history["vm.requested"] if t >= window_start)
        self.deaths = rates.EventRate(t for t in history["vm.gone"] if t >= window_start)
        earliest = [min(times) for times in history.values() if times]
        self.data_since = min([*earliest, now])

    def observed(self, facts: dict[int, vm_driver.VmObservation]) -> None:
        self.facts = facts

    def planner_facts(self) -> dict[int, domain_facts.VmFacts]:
        """``facts`` as the planner reads them, each made once per observation: a driver
        hands back the same observation of a VM that did not change (the remote one does), and
        making 10,000 records anew was a fifth of a tick's CPU at that scale."""
        made: dict[int, tuple[vm_driver.VmObservation, domain_facts.VmFacts]] = {}
        kept = self._made
        for vm_id, seen in self.facts.items():
            last = kept.get(vm_id)
            made[vm_id] = last if last is not None and last[0] is seen else (seen, facts_of(seen))
        self._made = made
        return {vm_id: fact for vm_id, (_, fact) in made.items()}

    def take_runners(self) -> tuple[model.RunnerInfo, ...] | None:
        """The latest runner listing, once (the planner acts on a listing once)."""
        runners, self.runners = self.runners, None
        return runners

    # --- VMs -------------------------------------------------------------------------------

    async def create_vm(
        self,
        *,
        pool: model.Pool,
        scope: str,
        prefix: str,
        reason: str,
        now: float,
        host: str | None = None,
    ) -> model.Vm:
        vm = await self.store.create_vm(pool=pool, scope=scope, prefix=prefix, now=now, host=host)
        self.vms[vm.vm_id] = vm
        self.spawns.add(now)
        self.metrics.vm_starts.labels(vm.pool).inc()
        await self.store.add_event(
            kind="vm.requested",
            message=f"VM {vm.vm_id} ({vm.name}) requested in pool {pool.name}"
            + (f" on host {host}" if host else "")
            + f": {reason}",
            at=now,
            vm_id=vm.vm_id,
        )
        return vm

    async def put_vm(self, vm: model.Vm) -> None:
        """Persist a change that is not a state change (a runner id, a linked job)."""
        await self.store.save_vm(vm)
        if vm.vm_id in self.vms:
            self.vms[vm.vm_id] = vm
        else:
            self.gone = [vm if g.vm_id == vm.vm_id else g for g in self.gone]

    async def save_vm(self, vm: model.Vm, *, note: str) -> None:
        """Persist a state change, then remember it and record the event."""
        before = self.vms.get(vm.vm_id)
        await self.store.save_vm(vm)
        if vm.ready_at is not None and (before is None or before.ready_at is None):
            self.metrics.boot.observe(max(0.0, vm.ready_at - vm.created_at))
        self.vms[vm.vm_id] = vm
        await self.store.add_event(
            kind=f"vm.{vm.state.value}",
            message=f"VM {vm.vm_id} {vm.state.value}" + (f": {note}" if note else ""),
            at=self.clock(),
            vm_id=vm.vm_id,
            job_id=vm.job_id,
        )

    async def bury(self, gone: model.Vm, *, note: str = "") -> None:
        """Record a VM as gone (its resources already released)."""
        await self.store.save_vm(gone)
        self.vms.pop(gone.vm_id, None)
        self.gone.insert(0, gone)
        del self.gone[KEEP_GONE_VMS:]
        now = gone.ended_at or self.clock()
        self.deaths.add(now)
        reason = gone.death_reason.value if gone.death_reason else "unknown"
        self.metrics.vm_deaths.labels(gone.pool, reason).inc()
        await self.store.add_event(
            kind="vm.gone",
            message=f"VM {gone.vm_id} gone: {reason}" + (f" ({note})" if note else ""),
            at=now,
            vm_id=gone.vm_id,
            job_id=gone.job_id,
        )

    def consumed(self, now: float) -> tuple[model.Vm, ...]:
        """Recently gone VMs that ran a job we have not linked to them yet."""
        return tuple(
            vm
            for vm in self.gone
            if vm.job_id is None
            and (vm.ran_job or vm.death_reason is model.DeathReason.JOB_FINISHED)
            and (vm.ended_at or 0.0) > now - CONSUMED_MEMORY_SECONDS
        )

    # --- start back-off --------------------------------------------------------------------

    def start_failed(
        self, *, pool: str, reason: str, now: float, not_before: float | None = None
    ) -> pool_backoff.PoolBackoff:
        """A start or registration in ``pool`` failed: back off its next attempt."""
        held = pool_backoff.after_failure(
            self.backoff.get(pool), pool=pool, reason=reason, now=now, not_before=not_before
        )
        self.backoff[pool] = held
        self.metrics.start_failures.labels(pool).inc()
        return held

    def start_succeeded(self, *, pool: str) -> None:
        self.backoff.pop(pool, None)

    # --- jobs ------------------------------------------------------------------------------

    async def stamp_requested(self, job_id: int | None, *, now: float) -> None:
        """Stamp 'VM requested' on the job a start was counted for."""
        job = self.jobs.get(job_id) if job_id is not None else None
        if job is None or job.vm_requested_at is not None:
            return
        stamped = dataclasses.replace(job, vm_requested_at=now)
        await self.store.save_jobs([stamped])
        self.jobs[stamped.id] = stamped

    async def merge_jobs(self, seen: Iterable[model.Job], *, current: bool = False) -> None:
        """Fold job observations (REST or webhook) into our state, forward only.

        ``current``: the observations are a REST poll's, not possibly late webhooks; then an
        assigned job seen queued again, whose runner (one of our VMs) is gone without having
        finished a job, was re-queued by GitHub and is served again.
        """
        changes: dict[int, tuple[model.Job | None, model.Job]] = {}
        vms_by_name = {vm.name: vm for vm in [*self.vms.values(), *self.gone]}
        links: dict[int, tuple[model.Vm, int]] = {}
        for observed in seen:
            known = (
                changes[observed.id][1]
                if observed.id in changes
                else self.jobs.get(observed.id) or self._completed(observed.id)
            )
            gone = current and _runner_gone(known, vms_by_name)
            merged = domain_jobs.merge(known, observed, runner_gone=gone)
            if merged.runner_name in vms_by_name:
                vm = vms_by_name[merged.runner_name]
                merged = waiting.with_job_stages(merged, vm)
                if vm.job_id is None:
                    links[vm.vm_id] = (vm, merged.id)
            if merged != known:
                first = changes.get(observed.id, (known, merged))[0]
                changes[observed.id] = (first, merged)
        await self.store.save_jobs([merged for _, merged in changes.values()])
        for vm, job_id in links.values():  # GitHub may name a VM's job long after it changed
            await self.put_vm(dataclasses.replace(vm, job_id=job_id, ran_job=True))
        now = self.clock()
        for known, merged in changes.values():
            self._observe_latencies(known, merged)
            if merged.is_open:
                self.jobs[merged.id] = merged
            else:
                self.jobs.pop(merged.id, None)
                self._remember_completed(merged, first_time=known is None or known.is_open)
            if known is None or known.status is not merged.status:
                await self.store.add_event(
                    kind=f"job.{merged.status.value}",
                    message=_job_message(merged),
                    at=now,
                    job_id=merged.id,
                    vm_id=merged.vm_id,
                )

    def _observe_latencies(self, known: model.Job | None, merged: model.Job) -> None:
        if merged.started_at is not None and (known is None or known.started_at is None):
            self.metrics.queued_to_started.observe(max(0.0, merged.started_at - merged.created_at))
        if merged.vm_ready_at is not None and (known is None or known.vm_ready_at is None):
            self.metrics.queued_to_vm_ready.observe(
                max(0.0, merged.vm_ready_at - merged.created_at)
            )

    def _completed(self, job_id: int) -> model.Job | None:
        return next((job for job in self.recent_completed if job.id == job_id), None)

    def _remember_completed(self, job: model.Job, *, first_time: bool) -> None:
        self.recent_completed = [j for j in self.recent_completed if j.id != job.id]
        self.recent_completed.insert(0, job)
        del self.recent_completed[RECENT_JOBS:]
        if first_time:
            self.metrics.jobs_completed.labels(job.conclusion or "unknown").inc()
            rated = job.conclusion not in repository.UNRATED_CONCLUSIONS
            self.counters = repository.Counters(
                completed_jobs=self.counters.completed_jobs + 1,
                successful_jobs=self.counters.successful_jobs + (job.conclusion == "success"),
                rated_jobs=self.counters.rated_jobs + rated,
            )

    # --- samples ---------------------------------------------------------------------------

    async def sample(self, *, now: float, step: float) -> None:
        since = now - step
        started = await self.store.queue_to_start_seconds(since=since, until=now)
        await self.store.add_sample(
            repository.Sample(
                at=now,
                step_seconds=int(step),
                active_vms=float(len(self.vms)),
                queued_jobs=float(
                    sum(1 for j in self.jobs.values() if j.status is model.JobStatus.QUEUED)
                ),
                spawns=float(self.spawns.count_since(since)),
                deaths=float(self.deaths.count_since(since)),
                queue_to_start_p50=rates.percentile(started, 0.5),
                queue_to_start_p95=rates.percentile(started, 0.95),
            )
        )


def _runner_gone(known: model.Job | None, vms_by_name: dict[str, model.Vm]) -> bool:
    """The runner ``known`` was assigned to is one of our VMs, gone without finishing a job."""
    if known is None or known.runner_name is None:
        return False
    vm = vms_by_name.get(known.runner_name)
    return (
        vm is not None
        and not vm.is_active
        and vm.death_reason is not model.DeathReason.JOB_FINISHED
    )


def _job_message(job: model.Job) -> str:
    where = f" on {job.runner_name}" if job.runner_name else ""
    verdict = f" ({job.conclusion})" if job.conclusion else ""
    return f"job {job.id} ({job.name or 'unnamed'}) {job.status.value}{where}{verdict}"


async def installation_prefix(store: repository.Store, *, prefix: str, now: float) -> str:
    """``<prefix>-<id>``: the id is made once per installation (per database) and kept, so
    every runner this installation registers carries it."""
    saved = (await store.control_state()).get("installation", {})
    installation = str(saved.get("id") or "")
    if not installation:
        installation = secrets.token_hex(3)
        await store.set_control_state("installation", {"id": installation}, at=now)
    return f"{prefix}-{installation}"


def facts_of(observation: vm_driver.VmObservation) -> domain_facts.VmFacts:
    """What the planner reads of a driver's observation."""
    return domain_facts.VmFacts(
        alive=observation.alive,
        runner_online=observation.runner_online,
        job_started=observation.job_started,
        job_finished=observation.job_finished,
        exit_code=observation.exit_code,
        pid=observation.pid,
        ip=observation.ip,
        kept_until=observation.kept_until,
        host_lost=observation.host_lost,
    )
