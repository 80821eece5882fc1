"""Plan + placement per tick at 100 hosts, 10,000 VMs and 20,000 queued jobs (target 50 ms).

Times ``planner.plan()`` with ``Snapshot.hosts`` set (lifecycle, demand, fair share and
placement, draining) as the loop runs it: with the queue book (``domain/queuebook.py``) it
kept from the tick before synced with this tick's jobs (3.5% of them new or changed since),
the sync counted; next to it the same plan from the jobs alone (no kept book: every key's
queued jobs grouped and sorted afresh). Also ``hostplan.allocate`` alone (fair order +
``place_many`` of the starts the planner hands it) and the why-queued notes the view adds
(``present._capacity_notes``).
Two limits: synthetic's (``max_vms`` = VMs + 500, so at most 500 starts) and none in reach
(every queued job a start, the hosts' room decides: placement's worst case). Each first as
the product plans it, with ``vm.max_starts_per_tick`` at its default (a tick's starts at
most: a tick's acts register a runner per start, about a second apiece at github.com), then
with no start limit.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import hosts_world
from common import pct

from blacksmith_mini import collector, settings_vm
from blacksmith_mini.control import present
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import hostplan, model, planner, queuebook
from blacksmith_mini.domain.hostset import HostPlan

TARGET_MS = 50.0
PER_TICK = settings_vm.VmSettings().max_starts_per_tick  # the default: a tick's starts at most
ROUNDS = 12
NEW_PER_TICK, CHANGED_PER_TICK, STRIDE = 200, 500, 37  # jobs a tick brings: 3.5% of 20,000


@dataclasses.dataclass(frozen=True)
class Row:
    what: str
    starts: int
    placed: int
    p50_ms: float
    p95_ms: float
    target_ms: float | None


def timed(call: Callable[[], Any], rounds: int = ROUNDS) -> tuple[list[float], Any]:
    """CPU milliseconds of each call (``process_time``: other processes on a busy machine do
    not count), after a warm-up, with the collector paused as the loop pauses it."""
    result = call()
    times = []
    for _ in range(rounds):
        with collector.paused():
            started = time.process_time()
            result = call()
            times.append((time.process_time() - started) * 1000)
    return times, result


def previous_tick(jobs: dict[int, model.Job]) -> dict[int, model.Job]:
    """The open jobs as the loop's book saw them a tick before: ``NEW_PER_TICK`` of them not
    yet arrived, ``CHANGED_PER_TICK`` others in an earlier record (equal content, another
    object: the book moves each, as it would a job stamped or re-queued since)."""
    ids = sorted(jobs)
    new = set(ids[::STRIDE][:NEW_PER_TICK])
    changed = set(ids[1::STRIDE][:CHANGED_PER_TICK])
    return {
        job_id: dataclasses.replace(job) if job_id in changed else job
        for job_id, job in jobs.items()
        if job_id not in new
    }


def kept_book_ticks(
    snapshot: model.Snapshot, policy: model.Policy, now: float
) -> tuple[list[float], list[act.Action]]:
    """CPU milliseconds of a tick's planning as the loop does it: its queue book, kept from
    the tick before, synced with this tick's jobs, then ``plan()``. The book of the tick
    before is built outside the timing, afresh for each round (a sync moves it on). The
    collector is paused around the sync and the plan, as the loop's tick pauses it."""
    jobs = {job.id: job for job in snapshot.jobs}
    before = previous_tick(jobs)
    times, actions = [], []
    for _ in range(ROUNDS + 1):  # the first is a warm-up
        book = queuebook.QueueBook.of(before.values(), policy)
        with collector.paused():  # as the loop's tick runs them (control/reconciler)
            started = time.process_time()
            kept = book.sync(jobs, policy)
            actions = planner.plan(snapshot, policy, now, queue=kept)
            times.append((time.process_time() - started) * 1000)
    return times[1:], actions


def measure() -> list[Row]:
    rows: list[Row] = []
    for capped in (True, False):
        snapshot, policy, now = hosts_world.world(capped=capped)
        assert snapshot.hosts is not None
        label = "capped" if capped else "uncapped"
        limited = dataclasses.replace(policy, max_starts_per_tick=PER_TICK)
        times, first = kept_book_ticks(snapshot, limited, now)
        placed = sum(1 for a in first if isinstance(a, act.StartVm))
        what = f"plan() with hosts, {label}, {PER_TICK}/tick"
        rows.append(Row(what, 0, placed, *_p(times), TARGET_MS))
        times, actions = kept_book_ticks(snapshot, policy, now)
        placed = sum(1 for a in actions if isinstance(a, act.StartVm))
        scratch, same = timed(functools.partial(planner.plan, snapshot, policy, now))
        assert same == actions, "a kept book plans as the jobs alone do"
        one_box = dataclasses.replace(snapshot, hosts=None)
        bare_times, bare = kept_book_ticks(one_box, policy, now)
        wanted = [a for a in bare if isinstance(a, act.StartVm)]
        rows.append(Row(f"  no start limit, {label}", len(wanted), placed, *_p(times), TARGET_MS))
        rows.append(Row("  the same, no kept book", len(wanted), placed, *_p(scratch), None))
        rows.append(Row(f"  plan() on one box, {label}", len(wanted), 0, *_p(bare_times), None))
        vms = [vm for vm in snapshot.vms if vm.is_active]
        jobs = {job.id: job for job in snapshot.jobs}
        pools = {pool.name: pool for pool in policy.pools}
        allocate = functools.partial(
            hostplan.allocate, wanted, plan=snapshot.hosts, vms=vms, pools=pools, jobs=jobs
        )
        times, found = timed(allocate)
        rows.append(Row(f"  allocate() alone, {label}", len(wanted), len(found), *_p(times), None))
    plan, open_jobs, vms = snapshot.hosts, list(snapshot.jobs), _after(vms, actions, now=now)
    assert plan is not None
    times, notes = timed(
        lambda: present._capacity_notes(plan, policy=policy, active=vms, jobs=open_jobs), rounds=4
    )
    assert notes, "the hosts are full once the tick's starts are made: every job has a note"
    rows.append(Row("why-queued notes (per view)", 0, 0, *_p(times), None))
    times, batched = timed(
        lambda: _batched_notes(plan, policy=policy, vms=vms, jobs=open_jobs), rounds=4
    )
    assert batched == notes
    rows.append(Row("  with placement_/fair_share_notes", 0, 0, *_p(times), None))
    return rows


def _after(vms: list[model.Vm], actions: list[Any], *, now: float) -> list[model.Vm]:
    """The active VMs once the tick's starts are made (each a pending VM on its host)."""
    pools = {vm.pool: vm for vm in vms}
    made = [
        dataclasses.replace(
            pools[start.pool],
            vm_id=1_000_000 + index,
            name=f"bm-new-{index}",
            scope=start.scope,
            state=model.VmState.PENDING,
            state_since=now,
            job_id=None,
            host=start.host,
        )
        for index, start in enumerate(a for a in actions if isinstance(a, act.StartVm))
    ]
    return [*vms, *made]


def _batched_notes(
    plan: HostPlan, *, policy: model.Policy, vms: list[model.Vm], jobs: list[model.Job]
) -> dict[str, dict[str, str]]:
    """``present._capacity_notes`` as it would be with the batch helpers (usage and held VMs
    counted once per view, not once per pool and per repository)."""
    full = hostplan.placement_notes(policy.pools, plan=plan, vms=vms)
    if not full:
        return {}
    queued = collections.Counter(j.repository for j in jobs if j.status is model.JobStatus.QUEUED)
    by_id = {job.id: job for job in jobs}
    fair = hostplan.fair_share_notes(
        queued, queued=queued, vms=vms, jobs=by_id, weights=plan.weights
    )
    return {
        repo: {
            pool: f"{note}; {fair[repo]}" if repo in fair else note for pool, note in full.items()
        }
        for repo in queued
    }


def _p(times: list[float]) -> tuple[float, float]:
    return statistics.median(times), pct(times, 0.95)


def show(rows: list[Row]) -> list[str]:
    lines = [
        f"{'plan + placement, CPU ms per tick':<36} {'starts':>7} {'placed':>7} "
        f"{'p50':>8} {'p95':>8} {'p50/target':>11}"
    ]
    for row in rows:
        ratio = f"{row.p50_ms / row.target_ms:>10.2f}x" if row.target_ms else f"{'':>11}"
        starts = f"{row.starts:>7,}" if row.starts else f"{'':>7}"
        placed = f"{row.placed:>7,}" if row.placed else f"{'':>7}"
        lines.append(
            f"{row.what:<36} {starts} {placed} {row.p50_ms:>8.2f} {row.p95_ms:>8.2f} {ratio}"
        )
    return lines
