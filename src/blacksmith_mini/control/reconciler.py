"""The reconcile loop: observe (GitHub, driver, store), plan, act, record; level-triggered.

A timer and events (driver changes, simulator or webhook deliveries, operator actions) wake
it. Each tick ends by publishing a new immutable ``View``. An act that fails is logged and
recorded as an event; the next tick plans again from the facts, so it is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
from collections.abc import Callable

from blacksmith_mini.control import acts, observer, present, rates, view
from blacksmith_mini.control import metrics as metrics_mod
from blacksmith_mini.control import operator as operator_mod
from blacksmith_mini.domain import backoff as pool_backoff
from blacksmith_mini.domain import facts as domain_facts
from blacksmith_mini.domain import jobs as domain_jobs
from blacksmith_mini.domain import model, planner
from blacksmith_mini.github import port, webhooks
from blacksmith_mini.store import repository
from blacksmith_mini.vm import driver as vm_driver

log = logging.getLogger(__name__)
RECENT_JOBS = 200
RECENT_GONE_VMS = 50
STUCK_AFTER_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
CONSUMED_MEMORY_SECONDS = 600.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LoopConfig:
    tick_interval: float = 1.0
    github_poll_interval: float = 5.0
    sample_interval: float = 60.0
    runner_prefix: str = "bm"
    runner_group_id: int = 1
    ssh_public_key: str | None = None
    simulate: bool = False
    on_shutdown: str = "leave"  # "leave" (VMs keep running for adoption) or "drain"
    drain_seconds: float = 4.0
    prune_interval: float = 3600.0
    lag_allowance: float = 60.0  # how long GitHub may lag a runner's news (see Snapshot)


class Reconciler:
    def __init__(
        self,
        *,
        policy: model.Policy,
        store: repository.Store,
        github: port.GitHubPort,
        driver: vm_driver.VmDriver,
        config: LoopConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_policy = policy  # as configured; operator decisions apply on top
        self.policy = policy
        self.lock = asyncio.Lock()  # a tick and an operator action never interleave
        self.store = store
        self.github = github
        self.driver = driver
        self.config = config
        self.clock = clock
        self.repositories: tuple[str, ...] = tuple(
            scope for scope in policy.scopes if not scope.startswith("org:")
        )  # polled for jobs; at organization scope, filled in by the runtime
        self.jobs: dict[int, model.Job] = {}
        self.vms: dict[int, model.Vm] = {}
        self.gone: list[model.Vm] = []
        self.recent_completed: list[model.Job] = []
        self.runners: tuple[model.RunnerInfo, ...] | None = None
        self.facts: dict[int, vm_driver.VmObservation] = {}
        self.spawns = rates.EventRate()
        self.deaths = rates.EventRate()
        self.counters = repository.Counters(completed_jobs=0, successful_jobs=0, rated_jobs=0)
        self.data_since: float | None = None
        self.act_error: str | None = None  # the last act that failed this tick, if any
        self.backoff: dict[str, pool_backoff.PoolBackoff] = {}  # pools whose starts fail
        # Runner names start with this; set at start-up to ``<runner_prefix>-<installation>``
        # so cleanup never touches another installation's runners in the same organization.
        self.runner_prefix = config.runner_prefix
        self._wake = asyncio.Event()
        self._deliveries_due = True  # at start-up: process what an earlier run acknowledged
        self.observer = observer.GitHubObserver(
            github=github,
            repositories=lambda: self.repositories,
            scopes=lambda: self.policy.scopes,
            open_jobs=lambda: list(self.jobs.values()),
            prefix=config.runner_prefix,
            interval=config.github_poll_interval,
            on_result=self.wake,
            clock=clock,
        )
        self._next_sample = 0.0
        self._next_prune = 0.0
        self._sample_spawns_mark = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.version = 0
        self.content_version = 0
        self._content_at = 0.0
        self.loop_health = view.LoopHealth(started_at=clock())
        self._subscribers: list[asyncio.Event] = []
        self.metrics = metrics_mod.Metrics()
        self.acts = acts.Acts(self)
        self.operator = operator_mod.Operator(self)
        self.config = config
        self.view: view.View = self._build_view(clock())
        self.metrics.watch(lambda: self.view)

    # --- start-up and shutdown -------------------------------------------------------------

    async def start(self, *, background: bool = True) -> None:
        """Load state, adopt or clean up what the driver holds, and start the loop task and
        the GitHub observer (``background=False``: neither, the caller ticks by hand)."""
        now = self.clock()
        self.runner_prefix = await self._installation_prefix(now)
        self.observer.prefix = self.runner_prefix
        await self.operator.load()
        self.vms = {vm.vm_id: vm for vm in await self.store.active_vms()}
        self.jobs = {job.id: job for job in await self.store.open_jobs()}
        self.recent_completed = [
            job for job in await self.store.recent_jobs(limit=RECENT_JOBS) if not job.is_open
        ]
        self.gone = [
            vm for vm in await self.store.recent_vms(limit=RECENT_GONE_VMS) if not vm.is_active
        ]
        self.counters = await self.store.counters()
        history = await self.store.event_times(
            kinds=("vm.requested", "vm.gone", "loop.started"), since=0.0
        )
        window_start = now - rates.WINDOW_SECONDS
        self.spawns = rates.EventRate(t for t in history["vm.requested"] if t >= window_start)
        self.deaths = rates.EventRate(t for t in history["vm.gone"] if t >= window_start)
        earliest = [min(times) for times in history.values() if times]
        self.data_since = min([*earliest, now])
        await self.store.add_event(kind="loop.started", message="control loop started", at=now)
        await self.driver.open()
        self.driver.on_change(self.wake)
        removed = await self.driver.sweep(list(self.vms))
        for description in removed:
            await self.store.add_event(kind="orphan.removed", message=description, at=now)
            log.warning("orphan removed: %s", description)
        adopted = [vm.vm_id for vm in self.vms.values() if vm.state is not model.VmState.PENDING]
        if adopted:
            log.info("adopting %d VM(s) left by an earlier run: %s", len(adopted), adopted)
        self.publish(now)
        if background:
            self.observer.start()
            self._task = asyncio.create_task(self._run(), name="reconcile-loop")

    async def _installation_prefix(self, now: float) -> str:
        """``<runner_prefix>-<id>``: the id is made once per installation (per database) and
        kept, so every runner this installation registers carries it."""
        saved = (await self.store.control_state()).get("installation", {})
        installation = str(saved.get("id") or "")
        if not installation:
            installation = secrets.token_hex(3)
            await self.store.set_control_state("installation", {"id": installation}, at=now)
        return f"{self.config.runner_prefix}-{installation}"

    async def stop(self) -> None:
        """Stop the loop; then stop every VM (or leave them for adoption, if configured)."""
        self._stopping = True
        self._wake.set()
        await self.observer.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.config.on_shutdown == "drain":
            await self.acts.stop_all(
                reason=model.DeathReason.SHUTDOWN, drain_seconds=self.config.drain_seconds
            )
        else:
            log.info("leaving %d VM(s) running for the next start to adopt", len(self.vms))
        await self.driver.close()

    # --- waking and subscribing ------------------------------------------------------------

    def wake(self, *, github: bool = False) -> None:
        if github:
            self.observer.wake()
        self._wake.set()

    def deliveries_arrived(self) -> None:
        """A webhook delivery was persisted: process it on the next tick, now."""
        self._deliveries_due = True
        self._wake.set()

    def subscribe(self) -> asyncio.Event:
        """An event set whenever a new view is published (for the live stream)."""
        event = asyncio.Event()
        self._subscribers.append(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(event)

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.tick_interval)
            self._wake.clear()
            started = time.monotonic()
            error = None
            try:
                async with self.lock:
                    await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad tick never kills the loop
                log.exception("reconcile tick failed")
                error = f"{type(exc).__name__}: {exc}"
            self.metrics.tick.observe(time.monotonic() - started)
            self.loop_health = dataclasses.replace(
                self.loop_health,
                last_tick_at=self.clock(),
                last_tick_duration_ms=round((time.monotonic() - started) * 1000, 2),
                ticks=self.loop_health.ticks + 1,
                last_error=error or self.act_error,
            )
            self.publish(self.clock())

    async def tick(self) -> None:
        now = self.clock()
        if self._deliveries_due:
            self._deliveries_due = False
            await self.process_deliveries()
        seen = self.observer.take()
        if seen is not None:
            self.runners = seen.runners
            await self.merge_jobs(list(seen.jobs), current=True)
        self.facts = dict(await self.driver.observe())
        snapshot = model.Snapshot(
            jobs=tuple(self.jobs.values()),
            vms=tuple(self.vms.values()),
            runners=self.runners,
            facts={vm_id: _facts(obs) for vm_id, obs in self.facts.items()},
            consumed=self._consumed(now),
            backoff=dict(self.backoff),
            lag_allowance=self.config.lag_allowance,
        )
        self.runners = None  # act on a runner listing once
        self.act_error = None
        for action in planner.plan(snapshot, self.policy, now):
            try:
                await self.acts.perform(action, now=self.clock())
            except Exception as exc:
                log.warning("act %s failed: %s", action, exc)
                self.metrics.act_failures.labels(type(action).__name__).inc()
                self.act_error = f"{type(action).__name__} failed: {exc}"
                await self._record_failure(action, exc)
        if now >= self._next_sample:
            await self._sample(now)
        if now >= self._next_prune:
            self._next_prune = now + self.config.prune_interval
            removed = await self.store.prune(now=now)
            if any(removed.values()):
                log.info("retention: removed %s", removed)

    def _consumed(self, now: float) -> tuple[model.Vm, ...]:
        """Recently gone VMs that ran a job we have not linked to them yet."""
        return tuple(
            vm
            for vm in self.gone
            if vm.job_id is None
            and (vm.ran_job or vm.death_reason is model.DeathReason.JOB_FINISHED)
            and (vm.ended_at or 0.0) > now - CONSUMED_MEMORY_SECONDS
        )

    async def _record_failure(self, action: object, exc: Exception) -> None:
        vm_id = getattr(action, "vm_id", None)
        with contextlib.suppress(Exception):
            await self.store.add_event(
                kind="act.failed",
                message=f"{type(action).__name__} failed: {exc}",
                at=self.clock(),
                vm_id=vm_id,
            )

    # --- webhook deliveries ----------------------------------------------------------------

    async def process_deliveries(self) -> None:
        """Fold persisted, unprocessed ``workflow_job`` deliveries into our state.

        Deliveries only move jobs forward (``jobs.merge``), so duplicates, late and reordered
        ones are harmless; the REST poll stays the source of truth.
        """
        pending = await self.store.pending_deliveries()
        seen: list[model.Job] = []
        for delivery_id, event, payload in pending:
            if event != "workflow_job":
                continue
            try:
                job = webhooks.workflow_job(json.loads(payload))
            except ValueError as exc:
                log.warning("webhook delivery %s ignored: %s", delivery_id, exc)
                continue
            if job is not None:
                seen.append(job)
        await self.merge_jobs(seen)
        await self.store.mark_processed([d[0] for d in pending], at=self.clock())
        if len(pending) >= 500:
            self._deliveries_due = True

    # --- folding in what GitHub says -------------------------------------------------------

    async def merge_jobs(self, seen: list[model.Job], *, current: bool = False) -> None:
        """Fold job observations (REST or webhook) into our state, forward only.

        ``current``: the observations are a REST poll's, not possibly late webhooks; then an
        assigned job seen queued again, whose runner (one of our VMs) is gone without having
        finished a job, was re-queued by GitHub and is served again.

        The changes are persisted before memory is updated: if the write fails, memory still
        differs from the next observation and the merge is retried then.
        """
        changes: dict[int, tuple[model.Job | None, model.Job]] = {}
        vms_by_name = {vm.name: vm for vm in [*self.vms.values(), *self.gone]}
        links: list[tuple[model.Vm, int]] = []
        for observed in seen:
            known = (
                changes[observed.id][1]
                if observed.id in changes
                else self.jobs.get(observed.id) or self._completed(observed.id)
            )
            merged = domain_jobs.merge(
                known,
                observed,
                runner_gone=current and _runner_gone(known, vms_by_name),
            )
            if merged.runner_name in vms_by_name:
                vm = vms_by_name[merged.runner_name]
                merged = planner.with_job_stages(merged, vm)
                if vm.job_id is None:
                    links.append((vm, merged.id))
            if merged != known:
                first = changes.get(observed.id, (known, merged))[0]
                changes[observed.id] = (first, merged)
        await self.store.save_jobs([merged for _, merged in changes.values()])
        now = self.clock()
        for vm, job_id in links:  # GitHub may name a VM's job long after the job changed
            await self._link(vm, job_id)
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

    async def _link(self, vm: model.Vm, job_id: int) -> None:
        """Record which job a VM ran (GitHub may tell us after the VM is gone)."""
        linked = dataclasses.replace(vm, job_id=job_id, ran_job=True)
        if vm.vm_id in self.vms:
            self.vms[vm.vm_id] = linked
        else:
            self.gone = [linked if g.vm_id == vm.vm_id else g for g in self.gone]
        await self.store.save_vm(linked)

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

    # --- recording -------------------------------------------------------------------------

    async def _sample(self, now: float) -> None:
        step = self.config.sample_interval
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
        self._next_sample = now + step

    def publish(self, now: float) -> None:
        """Replace the view; wake stream subscribers when its content changed (or every
        ``HEARTBEAT_SECONDS``, so clocks shown by clients stay fresh)."""
        self.version += 1
        previous = self.view
        fresh = self._build_view(now)
        if fresh.content() != previous.content() or now - self._content_at >= HEARTBEAT_SECONDS:
            self.content_version += 1
            self._content_at = now
        self.view = dataclasses.replace(fresh, content_version=self.content_version)
        if self.view.content_version != previous.content_version:
            for subscriber in self._subscribers:
                subscriber.set()

    def _build_view(self, now: float) -> view.View:
        return present.build_view(self, now)

    def set_unserved(self, unserved: dict[str, str]) -> None:
        """Organization scope: repositories the runner group does not serve, with why."""
        self.base_policy = dataclasses.replace(self.base_policy, unserved=unserved)
        self.policy = dataclasses.replace(self.policy, unserved=unserved)
        self.wake()

    # --- start failures ----------------------------------------------------------------------

    def start_failed(self, *, pool: str, reason: str, now: float) -> pool_backoff.PoolBackoff:
        """A start or registration in ``pool`` failed: back off its next attempt."""
        held = pool_backoff.after_failure(self.backoff.get(pool), pool=pool, reason=reason, now=now)
        self.backoff[pool] = held
        self.metrics.start_failures.labels(pool).inc()
        return held

    def start_succeeded(self, *, pool: str) -> None:
        self.backoff.pop(pool, None)

    def is_stuck(self, now: float) -> bool:
        last = self.loop_health.last_tick_at or self.loop_health.started_at
        limit = max(STUCK_AFTER_SECONDS, 5 * self.config.tick_interval)
        return self._task is None or self._task.done() or now - last > limit


def _facts(observation: vm_driver.VmObservation) -> domain_facts.VmFacts:
    return domain_facts.VmFacts(
        alive=observation.alive,
        runner_online=observation.runner_online,
        job_started=observation.job_started,
        job_finished=observation.job_finished,
        exit_code=observation.exit_code,
        pid=observation.pid,
        ip=observation.ip,
        kept_until=observation.kept_until,
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
