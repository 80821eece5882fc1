"""Many hosts in the plan (``Snapshot.hosts``): tables per rule, hypothesis for promises."""

from __future__ import annotations

import collections
from dataclasses import replace
from typing import Any

import pytest

from blacksmith_mini.control import present
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import facts, hostplan, labels, model, planner, waiting
from blacksmith_mini.domain import placement as pl
from blacksmith_mini.domain.hostset import HostPlan
from domain import builders

S = model.VmState
J, UP, GIB, NOW = model.JobStatus, pl.HostState.UP, 1024, 1_000.0
DOWN, CORDONED, DRAINING = pl.HostState.DOWN, pl.HostState.CORDONED, pl.HostState.DRAINING
POOL = replace(builders.DEFAULT, max_vms=1_000)  # 2 vCPUs, 4 GiB, x64
LARGE = replace(builders.LARGE, memory_mib=16 * GIB, max_vms=1_000)  # 8, 16 GiB
ARM = model.Pool(name="arm", labels=labels.normalize(["self-hosted", "linux", "arm64"]))
ANY = model.Pool(name="any", labels=labels.normalize(["self-hosted", "linux"]))  # no arch
LABELS = {"default": ("self-hosted", "x64"), "large": ("self-hosted", "large"), "arm": ("arm64",)}
REPOS = ("acme/app", "acme/web", "acme/api")
POLICY: dict[str, Any] = {"max_vms": 1_000, "pools": (POOL, LARGE, ARM), "scopes": REPOS}
FACTS = {
    s: facts.VmFacts(alive=True, runner_online=s != S.BOOTING, job_started=s == S.BUSY) for s in S
}
Placed = list[tuple[model.Vm, model.Job | None]]
Counts = dict[str, int]
Weights = dict[str, float]
Jobs = list[model.Job]


def host(name: str, *, gib: int = 256, **more: Any) -> pl.Host:
    return pl.Host(name=name, memory_mib=gib * GIB, **{"vcpus": 64, "disk_mib": 10**7, **more})


def on(
    vm_id: int, where: str, *, state: S = S.BUSY, repo: str = "acme/app", pool: model.Pool = POOL
) -> tuple[model.Vm, model.Job | None]:
    """A VM on host ``where``; a busy one runs (linked) an in-progress job of ``repo``."""
    vm = builders.vm(vm_id, state=state, pool=pool, scope=repo, state_since=NOW - 10)
    vm = replace(vm, host=where, created_at=NOW - 20)
    if state is not S.BUSY:
        return vm, None
    job = builders.job(50_000 + vm_id, status=J.IN_PROGRESS, repository=repo, runner_name=vm.name)
    return replace(vm, job_id=job.id), job


def queued(first: int, count: int, repo: str, *, pool: str = "default", at: float = 0.0) -> Jobs:
    found = (builders.job(first + i, repository=repo, created_at=at + i) for i in range(count))
    return [replace(job, labels=LABELS[pool]) for job in found]


def snap(plan: HostPlan | None, placed: Placed, jobs: Jobs, dead: Any = ()) -> model.Snapshot:
    """The world as the planner sees it; the driver's facts agree with each VM's state."""
    vms = [vm for vm, _ in placed]
    seen = {vm.vm_id: replace(FACTS[vm.state], alive=vm.vm_id not in dead) for vm in vms}
    running = [job for _, job in placed if job is not None]
    return model.Snapshot(jobs=(*running, *jobs), vms=tuple(vms), facts=seen, hosts=plan)


def policy(**more: Any) -> model.Policy:
    return builders.policy(**POLICY | more)


def starts(actions: list[act.Action]) -> list[act.StartVm]:
    return [a for a in actions if isinstance(a, act.StartVm)]


def per_repo(found: list[act.StartVm]) -> dict[str, int]:
    return dict(collections.Counter(start.scope for start in found))


def planned(plan: HostPlan, placed: Placed, jobs: Jobs, **more: Any) -> dict[str, int]:
    return per_repo(starts(planner.plan(snap(plan, placed, jobs), policy(**more), NOW)))


# --- tables ----------------------------------------------------------------------------------


def test_starts_go_to_up_hosts_with_room_freed_by_gone_vms_not_stopping_ones() -> None:
    states = (UP, CORDONED, DRAINING, DOWN, UP)
    plan = HostPlan(hosts=tuple(host(n, state=s) for n, s in zip("abcde", states, strict=True)))
    found = starts(planner.plan(snap(plan, [], queued(1, 4, "acme/app")), policy(), NOW))
    assert sorted(s.host or "" for s in found) == ["a", "a", "e", "e"]
    small = HostPlan(hosts=(host("a", vcpus=4, gib=8),))  # two 2-vCPU 4-GiB VMs fit
    found = starts(planner.plan(snap(small, [], queued(1, 5, "acme/app")), policy(), NOW))
    assert [(s.host, s.job_id) for s in found] == [("a", 1), ("a", 2)]
    vms = [on(1, "a", state=S.IDLE, repo="acme/web"), on(2, "a", state=S.STOPPING)]
    world = snap(small, vms, queued(1, 2, "acme/app"), dead={1})
    assert [s.host for s in starts(planner.plan(world, policy(), NOW))] == ["a"]


@pytest.mark.parametrize(("cpu", "disk", "expected"), [(1.0, 0, 2), (2.0, 0, 4), (2.0, 40, 2)])
def test_overcommit_and_disk_size_the_room(cpu: float, disk: int, expected: int) -> None:
    hosts = (host("a", vcpus=4, gib=64, disk_mib=100 * GIB),)
    plan = HostPlan(hosts=hosts, overcommit=pl.Overcommit(cpu=cpu), vm_disk_mib=disk * GIB)
    assert planned(plan, [], queued(1, 9, "acme/app")) == {"acme/app": expected}


def test_architecture_picks_the_host_and_no_arm_host_starts_nothing() -> None:
    jobs = [*queued(1, 1, "acme/app"), *queued(2, 1, "acme/app", pool="arm")]
    plan = HostPlan(hosts=(host("x"), host("a", arch="arm64")))
    found = starts(planner.plan(snap(plan, [], jobs), policy(), NOW))
    assert sorted((s.pool, s.host) for s in found) == [("arm", "a"), ("default", "x")]
    found = starts(planner.plan(snap(HostPlan(hosts=(host("x"),)), [], jobs), policy(), NOW))
    assert [(s.pool, s.host) for s in found] == [("default", "x")]


def test_the_repository_below_its_share_is_served_first_and_weights_split_the_room() -> None:
    held = [on(i, "a", repo="acme/app") for i in range(1, 13)]
    jobs = [*queued(1, 5, "acme/app"), *queued(100, 5, "acme/web", at=50)]
    room_for_4 = HostPlan(hosts=(host("a", vcpus=32, gib=64),))  # 16 VMs, 12 held
    assert planned(room_for_4, held, jobs) == {"acme/web": 4}
    room_for_6 = HostPlan(hosts=(host("a", vcpus=12, gib=64),), weights={"acme/app": 2.0})
    jobs = [*queued(1, 10, "acme/app"), *queued(100, 10, "acme/web")]
    assert planned(room_for_6, [], jobs) == {"acme/app": 4, "acme/web": 2}


def test_max_starts_per_tick_takes_the_fairest_starts_first() -> None:
    """app holds 12: the tick's 3 starts are web's, and app's oldest job follows next tick."""
    held = [on(i, "a", repo="acme/app") for i in range(1, 13)]
    jobs = [*queued(1, 5, "acme/app"), *queued(100, 5, "acme/web", at=50)]
    roomy = HostPlan(hosts=(host("a"),))
    found = starts(planner.plan(snap(roomy, held, jobs), policy(max_starts_per_tick=3), NOW))
    assert [(s.scope, s.job_id) for s in found] == [("acme/web", j) for j in (100, 101, 102)]
    assert planned(roomy, held, jobs) == {"acme/app": 5, "acme/web": 5}  # 0: no limit


APP_HOLDS_10 = [on(i, "a", repo="acme/app") for i in range(1, 11)]
FIVE_EACH = [*queued(1, 5, "acme/app"), *queued(100, 5, "acme/web", at=50)]


def test_fair_share_holds_when_max_vms_is_the_limit() -> None:
    """app holds 10 of 12 (its share is 7): both starts are web's; the plan gives one each."""
    found = planned(HostPlan(hosts=(host("a"),)), APP_HOLDS_10, FIVE_EACH, max_vms=12)
    assert found == {"acme/web": 2}


def test_allocate_applies_max_vms_and_pool_limits_in_fair_order() -> None:
    """The hostplan half of the fix: given uncapped starts, limits drop the least fair ones."""
    world = snap(None, APP_HOLDS_10, FIVE_EACH)
    wanted = starts(planner.plan(world, policy(), NOW))
    vms, by_id, pools = list(world.vms), {j.id: j for j in world.jobs}, {"default": POOL}
    plan = HostPlan(hosts=(host("a"),))
    found = hostplan.allocate(wanted, plan=plan, vms=vms, pools=pools, jobs=by_id, max_vms=12)
    assert per_repo(found) == {"acme/web": 2}
    small = {"default": replace(POOL, max_vms=11)}
    found = hostplan.allocate(wanted, plan=plan, vms=vms, pools=small, jobs=by_id, max_vms=99)
    assert per_repo(found) == {"acme/web": 1}


def test_draining_host_stops_idle_and_booting_vms_never_busy_ones() -> None:
    plan = HostPlan(hosts=(host("d", state=DRAINING), host("u")))
    vms = [on(1, "d", state=S.IDLE), on(2, "d", state=S.BOOTING), on(3, "d")]
    vms.append(on(4, "u", state=S.IDLE))
    actions = planner.plan(snap(plan, vms, []), policy(), NOW)
    found = [(a.vm_id, a.reason) for a in actions if isinstance(a, act.StopVm)]
    assert sorted(found) == [(vm_id, model.DeathReason.SCALED_DOWN) for vm_id in (1, 2)]


def test_repositories_and_weights_match_case_insensitively() -> None:
    """GitHub's ``acme/app`` is our scope ``Acme/App`` (bug fixed: its booting VMs counted
    apart from its busy ones; ``ACME/web``'s weight was lost). app holds 12, web 8 with
    weight 2 (level 4): web takes the 4 left."""
    plan = HostPlan(hosts=(host("a", vcpus=48, gib=96),), weights={"ACME/web": 2.0})  # 24 VMs
    app = [on(i, "a", repo="acme/app") for i in range(1, 7)]  # busy: GitHub's name
    app += [on(i, "a", state=S.BOOTING, repo="Acme/App") for i in range(7, 13)]  # our scope
    web = [on(i, "a", repo="acme/web") for i in range(13, 21)]
    jobs = [*queued(1, 11, "acme/app"), *queued(100, 9, "acme/web", at=50)]
    scopes = ("Acme/App", "acme/web")
    assert planned(plan, app + web, jobs, pools=(POOL,), scopes=scopes) == {"acme/web": 4}


# --- why queued ------------------------------------------------------------------------------


def test_why_queued_names_the_room_and_the_fair_share() -> None:
    """h1 is full, h2 has 8 GiB free; acme/app holds 12 of 20 VMs, acme/web 8."""
    plan = HostPlan(hosts=(host("h1", gib=48), host("h2", gib=40)))
    vms = [on(i, "h1", repo="acme/app") for i in range(1, 13)]
    vms += [on(i, "h2", repo="acme/web") for i in range(13, 21)]
    big = builders.job(1, repository="acme/app", job_labels=LABELS["large"])
    jobs = [big, *queued(100, 10, "acme/web"), *(job for _, job in vms if job is not None)]
    active = [vm for vm, _ in vms]
    notes = present._capacity_notes(plan, policy=policy(), active=active, jobs=jobs)
    reason = waiting.waiting_reason(
        big, policy=policy(), vms=active, now=NOW, capacity_notes=notes.get("acme/app")
    )
    assert reason == (
        "no host has 16 GiB free (largest free: h2 with 8 GiB); "
        "fair share: acme/app holds 12 of 20 VMs (its share is 10)"
    )
    web = notes["acme/web"]["large"]
    assert web.endswith("; fair share: acme/web holds 8 of 20 VMs (its share is 10)")
    assert notes["acme/web"]["arm"] == "no arm64 host; " + web.split("; ")[1]
    assert "default" not in notes["acme/web"]  # a 4 GiB VM still fits on h2


CORDONED_X, DRAINING_Y = host("x", state=CORDONED), host("y", state=DRAINING)
DOWN_X, DOWN_Y, ARM_X = host("x", state=DOWN), host("y", state=DOWN), host("x", arch="arm64")
NOTES = [
    ((host("x"),), ARM, "no arm64 host"),
    ((), POOL, "no hosts are registered"),
    ((DOWN_X,), ANY, "every host is down"),
    ((CORDONED_X, DRAINING_Y), POOL, "every x64 host is cordoned or draining"),
    ((CORDONED_X, DOWN_Y), ANY, "every host is cordoned, draining or down"),
    ((ARM_X, DOWN_Y), POOL, "every x64 host is down"),
    ((host("x", vcpus=6),), LARGE, "no host has 8 vCPUs free (largest free: x with 6 vCPUs)"),
    ((host("x", gib=12),), LARGE, "no host has 16 GiB free (largest free: x with 12 GiB)"),
    ((host("x"),), POOL, None),
]


@pytest.mark.parametrize(("hosts", "pool", "expected"), NOTES)
def test_placement_note(hosts: tuple[pl.Host, ...], pool: model.Pool, expected: str | None) -> None:
    assert hostplan.placement_note(pool, plan=HostPlan(hosts=hosts), vms=[]) == expected


def test_placement_note_counts_held_vms_and_disk() -> None:
    plan = HostPlan(hosts=(host("x", disk_mib=50 * GIB),), vm_disk_mib=20 * GIB)
    vms = [on(1, "x")[0], on(2, "x", state=S.STOPPING)[0]]  # a stopping VM still holds room
    expected = "no host has 20 GiB disk free (largest free: x with 10 GiB disk)"
    assert hostplan.placement_note(POOL, plan=plan, vms=vms) == expected


@pytest.mark.parametrize(
    ("weights", "mine", "theirs", "expected"),
    [
        ({"acme/app": 2.0}, 12, 8, "fair share: acme/app holds 12 of 20 VMs (its share is 13.3)"),
        ({}, 4, 8, "fair share: acme/app holds 4 of 12 VMs (its share is 6)"),  # below its share
        ({"acme/app": 0.0}, 12, 8, "fair share: acme/app holds 12 of 20 VMs (its share is 10)"),
        ({}, 20, 0, None),  # nobody else holds a VM: fairness is not why it waits
    ],
)
def test_fair_share_note(weights: Weights, mine: int, theirs: int, expected: str | None) -> None:
    """A weight of 0 counts as 1, as in the plan (bug fixed: it raised and broke the view)."""
    repos = ["acme/app"] * mine + ["acme/web"] * theirs
    vms = [on(i, "h", repo=repo) for i, repo in enumerate(repos, start=1)]
    jobs = {job.id: job for _, job in vms if job is not None}
    queue, active = {"acme/app": 5, "Acme/Web": 10}, [vm for vm, _ in vms]
    note = hostplan.fair_share_note(
        "acme/app", queued=queue, vms=active, jobs=jobs, weights=weights
    )
    assert note == expected
