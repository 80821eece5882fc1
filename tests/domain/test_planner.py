"""The planner: table cases for each rule, and hypothesis for the promises it must keep."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import facts, labels, model, planner
from domain import builders

S = model.VmState
J = model.JobStatus
ONLINE = facts.VmFacts(alive=True, runner_online=True)


def starts(actions: list[act.Action]) -> list[act.StartVm]:
    return [a for a in actions if isinstance(a, act.StartVm)]


def stops(actions: list[act.Action]) -> list[act.StopVm]:
    return [a for a in actions if isinstance(a, act.StopVm)]


def transitions(actions: list[act.Action]) -> list[act.Transition]:
    return [a for a in actions if isinstance(a, act.Transition)]


def snapshot(jobs=(), vms=(), fact=None, runners=None) -> model.Snapshot:  # type: ignore[no-untyped-def]
    return model.Snapshot(
        jobs=tuple(jobs), vms=tuple(vms), facts=fact if fact is not None else {}, runners=runners
    )


# --- scaling ---------------------------------------------------------------------------------


def test_one_vm_per_queued_job() -> None:
    plan = planner.plan(snapshot(jobs=[builders.job(1), builders.job(2)]), builders.policy(), 0)
    assert [(s.pool, s.scope) for s in starts(plan)] == [("default", "acme/app")] * 2


def test_idle_and_booting_vms_cover_queued_jobs() -> None:
    vms = [builders.vm(1, state=S.IDLE), builders.vm(2, state=S.BOOTING)]
    fact = {1: ONLINE, 2: facts.VmFacts(alive=True)}
    jobs = [builders.job(i) for i in range(1, 4)]
    assert len(starts(planner.plan(snapshot(jobs, vms, fact), builders.policy(), 1))) == 1


def test_busy_vms_with_a_known_job_do_not_cover_queued_jobs() -> None:
    vms = [dataclasses.replace(builders.vm(1, state=S.BUSY), job_id=99)]
    plan = planner.plan(snapshot([builders.job(1)], vms, {1: ONLINE}), builders.policy(), 1)
    assert len(starts(plan)) == 1


def test_busy_vm_whose_job_is_unknown_yet_covers_one_queued_job() -> None:
    # The runner printed "Running job" before GitHub's in_progress status reached us.
    vms = [builders.vm(1, state=S.BUSY)]
    jobs = [builders.job(1), builders.job(2)]
    plan = planner.plan(snapshot(jobs, vms, {1: ONLINE}), builders.policy(), 1)
    assert len(starts(plan)) == 1


def test_capped_by_max_vms() -> None:
    jobs = [builders.job(i) for i in range(1, 20)]
    assert len(starts(planner.plan(snapshot(jobs), builders.policy(max_vms=3), 0))) == 3


def test_max_starts_per_tick_caps_a_tick_oldest_job_first() -> None:
    jobs = [builders.job(i, created_at=100 - i) for i in range(1, 20)]
    policy = builders.policy(max_vms=10, max_starts_per_tick=4)
    assert [s.job_id for s in starts(planner.plan(snapshot(jobs), policy, 200))] == [
        19,
        18,
        17,
        16,
    ]
    policy = builders.policy(max_vms=3, max_starts_per_tick=4)  # the tighter limit wins
    assert len(starts(planner.plan(snapshot(jobs), policy, 200))) == 3


def test_capped_by_pool_limit() -> None:
    big = ("self-hosted", "large")
    jobs = [builders.job(i, job_labels=big) for i in range(1, 6)]
    plan = planner.plan(snapshot(jobs), builders.policy(), 0)
    assert [s.pool for s in starts(plan)] == ["large", "large"]


def test_warm_minimum_kept_per_scope() -> None:
    warm = dataclasses.replace(builders.DEFAULT, min_idle=2)
    policy = builders.policy(pools=(warm,), scopes=("acme/app", "acme/infra"))
    plan = planner.plan(snapshot(), policy, 0)
    assert sorted((s.scope, s.reason) for s in starts(plan)) == [
        ("acme/app", "warm pool minimum"),
        ("acme/app", "warm pool minimum"),
        ("acme/infra", "warm pool minimum"),
        ("acme/infra", "warm pool minimum"),
    ]


def test_oldest_waiting_key_is_served_first_when_capacity_is_short() -> None:
    jobs = [
        builders.job(1, created_at=50, repository="acme/infra"),
        builders.job(2, created_at=10, repository="acme/app"),
    ]
    policy = builders.policy(max_vms=1, scopes=("acme/app", "acme/infra"))
    assert [s.scope for s in starts(planner.plan(snapshot(jobs), policy, 60))] == ["acme/app"]


def test_unmatched_jobs_start_nothing() -> None:
    plan = planner.plan(snapshot([builders.job(1, job_labels=("gpu",))]), builders.policy(), 0)
    assert starts(plan) == []


def test_jobs_of_unknown_repositories_start_nothing() -> None:
    job = builders.job(1, repository="other/repo")
    assert starts(planner.plan(snapshot([job]), builders.policy(), 0)) == []


def test_org_scope_serves_every_repository() -> None:
    policy = builders.policy(scopes=("org:acme",), org_scope=True)
    plan = planner.plan(snapshot([builders.job(1, repository="acme/x")]), policy, 0)
    assert [s.scope for s in starts(plan)] == ["org:acme"]


def test_draining_and_paused_start_nothing() -> None:
    jobs = [builders.job(1)]
    assert starts(planner.plan(snapshot(jobs), builders.policy(draining=True), 0)) == []
    paused = builders.policy(paused_pools=frozenset({"default"}))
    assert starts(planner.plan(snapshot(jobs), paused, 0)) == []


def test_surplus_idle_vm_stopped_after_grace() -> None:
    vms = [builders.vm(1, state=S.IDLE, state_since=0)]
    early = planner.plan(snapshot(vms=vms, fact={1: ONLINE}), builders.policy(), 10)
    late = planner.plan(snapshot(vms=vms, fact={1: ONLINE}), builders.policy(), 31)
    assert stops(early) == []
    assert stops(late) == [act.StopVm(vm_id=1, reason=model.DeathReason.SCALED_DOWN)]


# --- lifecycle -------------------------------------------------------------------------------


def test_runner_online_makes_a_booting_vm_idle() -> None:
    vms = [builders.vm(1, state=S.BOOTING)]
    plan = planner.plan(snapshot(vms=vms, fact={1: ONLINE}), builders.policy(), 1)
    assert [t.target for t in transitions(plan)] == [S.IDLE]


def test_job_taken_makes_vm_busy_and_links_the_job() -> None:
    vms = [builders.vm(1, state=S.IDLE)]
    job = builders.job(7, status=J.IN_PROGRESS, runner_name="bm-1-abc")
    plan = planner.plan(snapshot([job], vms, {1: ONLINE}), builders.policy(), 1)
    assert [(t.target, t.job_id) for t in transitions(plan)] == [(S.BUSY, 7)]


def test_finished_job_moves_busy_vm_to_stopping() -> None:
    vms = [builders.vm(1, state=S.BUSY)]
    done = facts.VmFacts(alive=True, runner_online=True, job_started=True, job_finished=True)
    plan = planner.plan(snapshot(vms=vms, fact={1: done}), builders.policy(), 1)
    assert [(t.target, t.reason) for t in transitions(plan)] == [
        (S.STOPPING, model.DeathReason.JOB_FINISHED)
    ]


def test_exit_after_job_is_job_finished_and_mid_job_is_crashed() -> None:
    vms = [builders.vm(1, state=S.STOPPING), builders.vm(2, state=S.BUSY)]
    vms[0] = dataclasses.replace(vms[0], stop_reason=model.DeathReason.JOB_FINISHED)
    dead = facts.VmFacts(alive=False, exit_code=1)
    plan = planner.plan(snapshot(vms=vms, fact={1: dead, 2: dead}), builders.policy(), 1)
    reasons = {t.vm_id: t.reason for t in transitions(plan)}
    assert reasons == {1: model.DeathReason.JOB_FINISHED, 2: model.DeathReason.CRASHED}


def test_vm_unknown_to_the_driver_is_gone() -> None:
    plan = planner.plan(snapshot(vms=[builders.vm(1, state=S.IDLE)], fact={}), builders.policy(), 1)
    assert [(t.target, t.reason) for t in transitions(plan)] == [
        (S.GONE, model.DeathReason.CRASHED)
    ]


def test_pending_vm_is_resumed_then_fails_at_its_deadline() -> None:
    vms = [builders.vm(1, state=S.PENDING, state_since=0)]
    policy = builders.policy()
    assert planner.plan(snapshot(vms=vms), policy, 5)[0] == act.ResumeStart(vm_id=1)
    late = planner.plan(snapshot(vms=vms), policy, 121)
    assert stops(late) == [act.StopVm(vm_id=1, reason=model.DeathReason.START_FAILED)]
    assert not [a for a in late if isinstance(a, act.ResumeStart)]


def test_deadlines() -> None:
    vms = [
        builders.vm(1, state=S.BOOTING, state_since=0),
        builders.vm(2, state=S.IDLE, state_since=0),
        builders.vm(3, state=S.STOPPING, state_since=0),
    ]
    fact = {1: facts.VmFacts(alive=True), 2: ONLINE, 3: ONLINE}
    found = {
        s.vm_id: (s.reason, s.force)
        for s in stops(planner.plan(snapshot([builders.job(9)], vms, fact), builders.policy(), 400))
    }
    assert found[1] == (model.DeathReason.BOOT_TIMEOUT, False)
    assert found[2] == (model.DeathReason.IDLE_TIMEOUT, False)
    assert found[3][1] is True


def test_busy_vm_past_max_lifetime_is_not_stopped() -> None:
    vms = [builders.vm(1, state=S.BUSY, created_at=0)]
    plan = planner.plan(snapshot(vms=vms, fact={1: ONLINE}), builders.policy(), 10**6)
    assert stops(plan) == []


# --- runners ---------------------------------------------------------------------------------


def test_offline_idle_runner_without_vm_is_deregistered() -> None:
    runners = (
        model.RunnerInfo(id=1, name="bm-9-x", scope="acme/app", status="offline", busy=False),
        model.RunnerInfo(id=2, name="bm-8-x", scope="acme/app", status="offline", busy=True),
        model.RunnerInfo(id=3, name="bm-1-abc", scope="acme/app", status="offline", busy=False),
        model.RunnerInfo(id=4, name="bm-7-x", scope="acme/app", status="online", busy=False),
    )
    vms = [builders.vm(1, state=S.BOOTING)]
    plan = planner.plan(
        snapshot(vms=vms, fact={1: facts.VmFacts(alive=True)}, runners=runners),
        builders.policy(),
        1,
    )
    assert [a.runner_id for a in plan if isinstance(a, act.DeregisterRunner)] == [1]


def test_waiting_reasons() -> None:
    policy = builders.policy(max_vms=1)
    job = builders.job(1)
    assert planner.waiting_reason(job, policy=policy, vms=[], now=0) == (
        "a VM will be requested on the next tick"
    )
    booting = [builders.vm(1, state=S.BOOTING, state_since=0)]
    assert planner.waiting_reason(job, policy=policy, vms=booting, now=7) == "VM booting for 7s"
    busy = [builders.vm(1, state=S.BUSY)]
    assert "max_vms" in (planner.waiting_reason(job, policy=policy, vms=busy, now=7) or "")
    gpu = builders.job(2, job_labels=("gpu",))
    assert "gpu" in (planner.waiting_reason(gpu, policy=policy, vms=[], now=0) or "")


# --- properties ------------------------------------------------------------------------------

LABEL_SETS = [("self-hosted",), ("self-hosted", "linux"), ("self-hosted", "large"), ("gpu",)]


@st.composite
def worlds(draw: st.DrawFn) -> tuple[model.Snapshot, model.Policy, float]:
    max_vms = draw(st.integers(0, 12))
    pools = (
        dataclasses.replace(
            builders.DEFAULT, min_idle=draw(st.integers(0, 2)), max_vms=draw(st.integers(0, 10))
        ),
        dataclasses.replace(
            builders.LARGE, min_idle=draw(st.integers(0, 1)), max_vms=draw(st.integers(0, 4))
        ),
    )
    policy = builders.policy(max_vms=max_vms, pools=pools, scopes=("acme/app", "acme/infra"))
    now = 1000.0
    jobs = [
        builders.job(
            i,
            status=draw(st.sampled_from([J.QUEUED, J.QUEUED, J.IN_PROGRESS, J.ASSIGNED])),
            job_labels=draw(st.sampled_from(LABEL_SETS)),
            repository=draw(st.sampled_from(["acme/app", "acme/infra"])),
            created_at=draw(st.floats(0, now)),
        )
        for i in range(1, draw(st.integers(0, 25)) + 1)
    ]
    vms = []
    fact: dict[int, facts.VmFacts] = {}
    for vm_id in range(1, draw(st.integers(0, 15)) + 1):
        vm = builders.vm(
            vm_id,
            state=draw(st.sampled_from([s for s in S if s is not S.GONE])),
            pool=draw(st.sampled_from(pools)),
            scope=draw(st.sampled_from(["acme/app", "acme/infra"])),
            state_since=draw(st.floats(0, now)),
            created_at=0.0,
        )
        vms.append(vm)
        if draw(st.booleans()) or vm.state is not S.PENDING:
            fact[vm_id] = facts.VmFacts(
                alive=draw(st.booleans()),
                runner_online=draw(st.booleans()),
                job_started=draw(st.booleans()),
            )
    return model.Snapshot(jobs=tuple(jobs), vms=tuple(vms), facts=fact), policy, now


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_never_exceeds_max_vms_or_pool_limits(
    world: tuple[model.Snapshot, model.Policy, float],
) -> None:
    snap, policy, now = world
    plan = planner.plan(snap, policy, now)
    gone = {t.vm_id for t in transitions(plan) if t.target is S.GONE}
    active = [vm for vm in snap.vms if vm.vm_id not in gone]
    new = starts(plan)
    if new:
        assert len(active) + len(new) <= policy.max_vms
    for pool in policy.pools:
        added = sum(1 for s in new if s.pool == pool.name)
        if added:
            assert sum(1 for vm in active if vm.pool == pool.name) + added <= pool.max_vms


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_never_stops_a_busy_vm(world: tuple[model.Snapshot, model.Policy, float]) -> None:
    snap, policy, now = world
    plan = planner.plan(snap, policy, now)
    busy_now = {vm.vm_id for vm in snap.vms if vm.state is S.BUSY}
    busy_now |= {t.vm_id for t in transitions(plan) if t.target is S.BUSY}
    assert not busy_now & {s.vm_id for s in stops(plan)}


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_covers_every_queued_matching_job_when_capacity_allows(
    world: tuple[model.Snapshot, model.Policy, float],
) -> None:
    snap, policy, now = world
    policy = dataclasses.replace(
        policy,
        max_vms=10_000,
        pools=tuple(dataclasses.replace(p, max_vms=10_000) for p in policy.pools),
    )
    plan = planner.plan(snap, policy, now)
    gone = {t.vm_id for t in transitions(plan) if t.target is S.GONE}
    stopped = {s.vm_id for s in stops(plan)}
    supply: dict[tuple[str, str], int] = {}
    after = {t.vm_id: t.target for t in transitions(plan)}
    for vm in snap.vms:
        state = after.get(vm.vm_id, vm.state)
        if vm.vm_id in gone or vm.vm_id in stopped or state not in planner.SUPPLY_STATES:
            continue
        supply[(vm.pool, vm.scope)] = supply.get((vm.pool, vm.scope), 0) + 1
    for start in starts(plan):
        supply[(start.pool, start.scope)] = supply.get((start.pool, start.scope), 0) + 1
    # A runner that took a job GitHub has not told us of covers one queued job (see _scale).
    linked = {job.runner_name for job in snap.jobs if job.runner_name}
    for vm in [*planner._apply(snap.vms, transitions(plan), now), *snap.consumed]:
        if planner._ran_unknown_job(vm, linked, now=now, lag_allowance=snap.lag_allowance):
            supply[(vm.pool, vm.scope)] = supply.get((vm.pool, vm.scope), 0) + 1
    demand, _ = planner.queued_demand(snap.jobs, policy)
    for key, count in demand.items():
        assert supply.get(key, 0) >= count, (key, count, supply)
    assert all(labels.match(j.labels, policy.pools).pool is None or True for j in snap.jobs)


def test_gone_vm_that_ran_an_unlinked_job_covers_one_queued_job() -> None:
    # Its job's in_progress/completed news was lost; the job still looks queued.
    gone = dataclasses.replace(
        builders.vm(1, state=S.GONE), ran_job=True, death_reason=model.DeathReason.JOB_FINISHED
    )
    snap = model.Snapshot(
        jobs=(builders.job(1), builders.job(2)), vms=(), facts={}, consumed=(gone,)
    )
    assert len(starts(planner.plan(snap, builders.policy(), 1))) == 1


def test_unlinked_vm_covers_through_a_lagging_poll_until_the_lag_allowance() -> None:
    # GitHub's REST answers lag the runner: a complete poll after the VM's job still lists
    # the job as queued. The cover lasts until GitHub names the job or the allowance ends.
    gone = dataclasses.replace(
        builders.vm(1, state=S.GONE),
        ran_job=True,
        ended_at=5.0,
        death_reason=model.DeathReason.JOB_FINISHED,
    )
    jobs = (builders.job(1),)
    lagging = model.Snapshot(jobs=jobs, vms=(), facts={}, consumed=(gone,), lag_allowance=60.0)
    assert starts(planner.plan(lagging, builders.policy(), 25)) == []
    assert len(starts(planner.plan(lagging, builders.policy(), 66))) == 1


def test_a_linked_vm_stops_covering_at_once() -> None:
    busy = builders.vm(1, state=S.BUSY, state_since=5.0)
    jobs = (builders.job(1), builders.job(2, status=J.IN_PROGRESS, runner_name=busy.name))
    snap = model.Snapshot(jobs=jobs, vms=(busy,), facts={1: ONLINE})
    assert len(starts(planner.plan(snap, builders.policy(), 6))) == 1


def test_waiting_reason_names_githubs_rate_limit_or_outage() -> None:
    note = "GitHub rate limit: no runner can be registered until 12:00:00 UTC (60s)"
    job = builders.job(1)
    policy = builders.policy()
    assert planner.waiting_reason(job, policy=policy, vms=[], now=0, github_note=note) == note
    pending = [builders.vm(1, state=S.PENDING, state_since=0)]
    found = planner.waiting_reason(job, policy=policy, vms=pending, now=9, github_note=note)
    assert found == f"VM requested 9s ago; {note}"
