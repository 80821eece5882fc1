"""The reconcile loop: observe (GitHub, driver, store), plan, act, record; level-triggered.

A timer and events (driver changes, webhook deliveries, operator intents, a finished GitHub
poll) wake it. A tick folds in what arrived (webhook deliveries, the observer's latest poll),
reads the driver, asks the pure planner what to do with the policy (configuration plus the
operators' persisted decisions) and hands each action to ``acts``. Memory changes only through
``LoopState``. Each tick ends by publishing a new immutable ``View`` (built by ``present``).
An act that fails is logged and recorded as an event; the next tick plans again from the facts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable

from blacksmith_mini import collector
from blacksmith_mini.control import acts, observer, pacing, present, state, view, warm
from blacksmith_mini.control import config as config_mod
from blacksmith_mini.control import metrics as metrics_mod
from blacksmith_mini.control import operator as operator_mod
from blacksmith_mini.control import reruns as control_reruns
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import demand, model, planner, queuebook
from blacksmith_mini.domain.hostset import HostPlan
from blacksmith_mini.github import port, webhooks
from blacksmith_mini.store import repository
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.woken import woken

log = logging.getLogger(__name__)
STUCK_AFTER_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0
LoopConfig = config_mod.LoopConfig


class Reconciler:
    def __init__(
        self,
        *,
        policy: model.Policy,
        store: repository.Store,
        github: port.GitHubPort,
        driver: vm_driver.VmDriver,
        config: config_mod.LoopConfig,
        clock: Callable[[], float] = time.time,
        host_plan: Callable[[], HostPlan | None] = lambda: None,
        intents_store: repository.Store | None = None,
        on_intent: Callable[[], None] = lambda: None,
    ) -> None:
        self.base_policy = policy  # as configured
        self.policy = policy  # with the operators' decisions and the runner group's reach
        self.lock = asyncio.Lock()  # a tick and an operator action never interleave
        self.store = store
        self.github = github
        self.driver = driver
        self.config = config
        self.clock = clock
        self.host_plan = host_plan  # many hosts: where VMs may go (after each observe)
        self._on_intent = on_intent  # replicas: tell the others an intent was stored
        self.hosts: HostPlan | None = None
        self.metrics = metrics_mod.Metrics()
        self.state = state.LoopState(store=store, metrics=self.metrics, clock=clock)
        self.acts = acts.Acts(
            state=self.state, github=github, driver=driver, config=config, clock=clock
        )
        organization = next((s[4:] for s in policy.scopes if s.startswith("org:")), None)
        self.observer = observer.GitHubObserver(
            github=github,
            repositories=tuple(s for s in policy.scopes if not s.startswith("org:")),
            organization=organization,
            runner_group=config.runner_group,
            scopes=policy.scopes,
            open_jobs=lambda: list(self.state.jobs.values()),
            interval=config.github_poll_interval,
            on_result=self.wake,
            clock=clock,
        )
        self.operator = operator_mod.Operator(
            store=intents_store or store,  # replicas: any replica writes intents
            lock=self.lock,
            wake=self._intent_stored,
            clock=clock,
            current=self._current,
        )
        self.warm = warm.WarmPools(store=store)  # adaptive pools' idle targets
        self.act_error: str | None = None  # the last act that failed this tick, if any
        self.matches: dict[int, model.Match] = {}  # each open job's pool, once per tick
        self.queue: queuebook.QueueBook | None = None  # the queued jobs per key, between ticks
        self.runner_prefix = config.runner_prefix  # ``<prefix>-<installation>`` once started
        self._wake = asyncio.Event()
        self.pacer = pacing.Pacer(duty=config.tick_duty)  # at most this share of a core
        self._deliveries_due = True  # at start-up: process what an earlier run acknowledged
        self._next_sample = 0.0
        self._next_prune = 0.0
        self._task: asyncio.Task[None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._intents_due = False
        self._stopping = False
        # Numbered from this process's start (µs): a client resuming the event stream with an
        # earlier process's (or another replica's) version is not taken for ours: a snapshot.
        self.version = self.content_version = int(time.time() * 1_000_000)
        self._content_at = 0.0
        self.loop_health = view.LoopHealth(started_at=clock())
        self._subscribers: list[asyncio.Event] = []
        self.view: view.View = self._build_view(clock())
        self.metrics.watch(lambda: self.view)

    def _current(self) -> tuple[model.Policy, state.LoopState]:
        return self.policy, self.state

    # --- start-up and shutdown -------------------------------------------------------------

    async def start(self, *, background: bool = True) -> None:
        """Load state, adopt or clean up what the driver holds, and start the loop task and
        the GitHub observer (``background=False``: neither, the caller ticks by hand)."""
        now = self.clock()
        self.runner_prefix = await state.installation_prefix(
            self.store, prefix=self.config.runner_prefix, now=now
        )
        self.observer.prefix = self.runner_prefix
        await self.operator.load()
        self._refresh_policy()
        await self.state.load(now=now)
        await self.store.add_event(kind="loop.started", message="control loop started", at=now)
        self.driver.on_change(self.wake)
        removed = await self.acts.start_up(
            runner_prefix=self.runner_prefix, org=self.observer.organization
        )
        for description in removed:
            await self.store.add_event(kind="orphan.removed", message=description, at=now)
            log.warning("orphan removed: %s", description)
        adopted = [v.vm_id for v in self.state.vms.values() if v.state is not model.VmState.PENDING]
        if adopted:
            log.info("adopting %d VM(s) left by an earlier run: %s", len(adopted), adopted)
        self.publish(now)
        if background:
            self.observer.start()
            self._task = asyncio.create_task(self._run(), name="reconcile-loop")

    async def stop(self) -> None:
        """Stop; a leader leaves its VMs for the next start to adopt (or drains if set)."""
        leading = self._task is not None
        await self._halt()
        await self._stop_following()
        if not leading:
            return
        if self.config.on_shutdown == "drain":
            await self.acts.stop_all(
                reason=model.DeathReason.SHUTDOWN, drain_seconds=self.config.drain_seconds
            )
        else:
            log.info("leaving %d VM(s) running for the next start to adopt", len(self.state.vms))
        await self.driver.close()

    async def _halt(self) -> None:
        self._stopping = True
        self._wake.set()
        await self.observer.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- replicas: leading and following ----------------------------------------------------

    async def lead(self) -> None:
        """This replica was elected: load what the store holds and run the loop."""
        await self._stop_following()
        self._stopping = False
        self._deliveries_due = True
        await self.start()

    async def follow(self) -> None:
        """Not (or no longer) the leader: stop acting now; keep the view fresh from the store."""
        await self._halt()
        if self._follow_task is None:
            self._follow_task = asyncio.create_task(self._follow(), name="follow-loop")

    async def _stop_following(self) -> None:
        task, self._follow_task = self._follow_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self) -> None:
        while True:
            try:
                now = self.clock()
                await self.operator.load()
                self._refresh_policy()
                await self.state.load(now=now)
                self.loop_health = dataclasses.replace(self.loop_health, last_tick_at=now)
                self.publish(now)
            except Exception:  # a follower keeps serving what it last read
                log.exception("follower refresh failed")
            await woken(self._wake, timeout=self.config.tick_interval)
            self._wake.clear()

    def _intent_stored(self) -> None:
        self.wake()
        self._on_intent()

    def intents_changed(self) -> None:
        """An operator intent was stored (by any replica): reload intents on a tick, now."""
        self._intents_due = True
        self._wake.set()

    # --- waking and subscribing ------------------------------------------------------------

    def wake(self) -> None:
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
            await self.pacer.rest()  # what the last tick's computing owes (``pacing``)
            await woken(self._wake, timeout=self.config.tick_interval)
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
            with self.pacer.computing():
                self.publish(self.clock())

    async def tick(self) -> None:
        now = self.clock()
        if self._deliveries_due:
            self._deliveries_due = False
            await self.process_deliveries()
        if self._intents_due:
            self._intents_due = False
            await self.operator.load()
        seen = self.observer.take()
        if seen is not None:
            self.state.runners = seen.runners
            await self.state.merge_jobs(seen.jobs, current=True)
        await self.warm.refresh(self.operator.apply(self.base_policy), self.state.vms_now, now=now)
        self._refresh_policy()
        self.state.observed(dict(await self.driver.observe()))
        self.hosts = self.host_plan()
        with collector.paused(), self.pacer.computing():  # many short-lived objects
            self.matches = demand.match_all(self.state.jobs.values(), self.policy.pools)
            if self.queue is None:
                self.queue = queuebook.QueueBook.of(self.state.jobs.values(), self.policy)
            else:
                self.queue = self.queue.sync(self.state.jobs, self.policy)
            snapshot = model.Snapshot(
                jobs=tuple(self.state.jobs.values()),
                vms=tuple(self.state.vms.values()),
                runners=self.state.take_runners(),
                facts=self.state.planner_facts(),
                consumed=self.state.consumed(now),
                backoff=dict(self.state.backoff),
                lag_allowance=self.config.lag_allowance,
                hosts=self.hosts,
            )
            actions = planner.plan(snapshot, self.policy, now, queue=self.queue)
        self.act_error = None
        made = sum(isinstance(action, act.StartVm) for action in actions)
        if 0 < self.policy.max_starts_per_tick <= made:
            self._wake.set()  # the tick's starts were capped: the next tick makes more, now
        for action in actions:
            try:
                await self.acts.perform(action, policy=self.policy, now=self.clock())
            except Exception as exc:
                log.warning("act %s failed: %s", action, exc)
                self.metrics.act_failures.labels(type(action).__name__).inc()
                self.act_error = f"{type(action).__name__} failed: {exc}"
                await self._record_failure(action, exc)
        await self.operator.forget_stops(active=set(self.state.vms))
        for failed, error in await control_reruns.rerun_infrastructure_failures(
            state=self.state, policy=self.policy, github=self.github, store=self.store, now=now
        ):
            await self._record_failure(failed, error)
        if now >= self._next_sample:
            await self.state.sample(now=now, step=self.config.sample_interval)
            self._next_sample = now + self.config.sample_interval
        if now >= self._next_prune:
            self._next_prune = now + self.config.prune_interval
            removed = await self.store.prune(now=now)
            if any(removed.values()):
                log.info("retention: removed %s", removed)

    def _refresh_policy(self) -> None:
        """Configuration, plus the operators' persisted decisions, plus (organization scope)
        the repositories the runner group does not serve."""
        decided = self.warm.apply(self.operator.apply(self.base_policy))
        self.policy = dataclasses.replace(decided, unserved=dict(self.observer.unserved))

    async def _record_failure(self, action: object, exc: Exception) -> None:
        message, vm_id = f"{type(action).__name__} failed: {exc}", getattr(action, "vm_id", None)
        with contextlib.suppress(Exception):
            await self.store.add_event(
                kind="act.failed", message=message, at=self.clock(), vm_id=vm_id
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
            except (ValueError, RecursionError) as exc:
                log.warning("webhook delivery %s ignored: %s", delivery_id, exc)
                continue
            if job is not None:
                seen.append(job)
        await self.state.merge_jobs(seen)
        await self.store.mark_processed([d[0] for d in pending], at=self.clock())
        if len(pending) >= 500:
            self._deliveries_due = True

    # --- publishing ------------------------------------------------------------------------

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
        return present.build_view(
            self.state,
            policy=self.policy,
            matches=self.matches,
            rate=self.github.rate,
            poll_interval=round(self.observer.effective_interval, 1),
            repositories=self.observer.snapshot(),
            loop=self.loop_health,
            version=self.version,
            content_version=self.content_version,
            driver=self.driver.name,
            simulate=self.config.simulate,
            now=now,
            hosts=self.hosts,
        )

    def is_stuck(self, now: float) -> bool:
        last = self.loop_health.last_tick_at or self.loop_health.started_at
        limit = max(STUCK_AFTER_SECONDS, 5 * self.config.tick_interval)
        running = self._task or self._follow_task  # leading, or following (replicas)
        return running is None or running.done() or now - last > limit
