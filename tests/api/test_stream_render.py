"""The event stream's renderer: over random successive views (VMs coming, going, changing, with
pids, kept times and ends; jobs queued, running, matched or not; the clock moving, the policy
changing), each render is exactly ``convert.status(view)`` as ``GET /api/status`` serializes it,
though it reuses the entities that did not change from the render before."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from blacksmith_mini.api import convert
from blacksmith_mini.api.stream_publisher import StatusRenderer
from blacksmith_mini.control import view as view_mod
from blacksmith_mini.domain import labels, model

POOLS = (
    model.Pool(name="default", labels=labels.normalize(["self-hosted", "linux", "x64"])),
    model.Pool(name="arm", labels=labels.normalize(["self-hosted", "linux", "arm64"])),
)
POLICIES = (
    model.Policy(max_vms=20, pools=POOLS, scopes=("acme/app",)),
    model.Policy(
        max_vms=9, pools=POOLS, scopes=("acme/app",), paused_pools=frozenset({"arm"}),
        timeouts=model.Timeouts(idle=30.0, boot=5.0),
    ),
)  # fmt: skip
STATES = list(model.VmState)
LABELS = [("self-hosted", "linux"), ("self-hosted", "arm64"), ("self-hosted", "gpu")]


def machine(vm_id: int, state: model.VmState, *, ended: bool, pool: int) -> model.Vm:
    return model.Vm(
        vm_id=vm_id, name=f"bm-{vm_id}", pool=POOLS[pool].name, scope="acme/app",
        labels=POOLS[pool].registration_labels(), vcpus=2, memory_mib=4096, state=state,
        state_since=1000.0 + vm_id, created_at=900.0 + vm_id / 3, pid=vm_id + 100,
        ended_at=1010.0 + vm_id if ended else None,
    )  # fmt: skip


def job(job_id: int, *, running: bool, labelled: int) -> model.Job:
    return model.Job(
        id=job_id, run_id=job_id, repository="acme/app", labels=LABELS[labelled],
        status=model.JobStatus.IN_PROGRESS if running else model.JobStatus.QUEUED,
        created_at=900.0 + job_id,
    )  # fmt: skip


vm_sets = st.lists(
    st.tuples(st.integers(1, 10), st.sampled_from(STATES), st.booleans(), st.integers(0, 1)),
    unique_by=lambda v: v[0],
    max_size=8,
)
job_sets = st.lists(
    st.tuples(st.integers(1, 8), st.booleans(), st.integers(0, 2)),
    unique_by=lambda j: j[0],
    max_size=6,
)
steps = st.tuples(
    vm_sets,
    job_sets,
    st.floats(0.0, 3.0),  # how far the clock moves
    st.integers(0, 1),  # which policy
    st.sets(st.integers(1, 10)),  # VMs with a pid of the view's own, and kept
    st.sets(st.integers(1, 8)),  # jobs matched this tick (pools_of: their reasons reused)
    st.sets(st.integers(1, 8)),  # jobs waiting
)


def world(version: int, at: float, step: Any) -> view_mod.View:
    vms, jobs, _, policy, marked_vms, matched, waiting = step
    open_jobs = tuple(job(i, running=r, labelled=lab) for i, r, lab in jobs)
    pools_of = {j.id: POOLS[0].name if j.labels == LABELS[0] else None for j in open_jobs}
    return view_mod.View(
        version=version, content_version=version, at=at, policy=POLICIES[policy],
        vms=tuple(machine(i, s, ended=e, pool=p) for i, s, e, p in vms), recent_jobs=(),
        open_jobs=open_jobs, unmatched=dict.fromkeys(matched, "no pool has gpu"),
        waiting=dict.fromkeys(waiting, "at max_vms"), pids={v: v + 7 for v in marked_vms},
        kept=dict.fromkeys(marked_vms, at + 60),
        pools_of={j: p for j, p in pools_of.items() if j in matched},
        github=view_mod.GitHubHealth(), completed_jobs_total=version,
        rates=view_mod.Rates(spawn_rate_per_min=None, death_rate_per_min=None,
                             pool_saturation_percent=5.0, success_rate_percent=None),
        loop=view_mod.LoopHealth(started_at=0.0, ticks=version), driver="fake", simulate=True,
    )  # fmt: skip


@given(st.lists(steps, min_size=1, max_size=8))
def test_each_render_is_exactly_the_status(changes: list[Any]) -> None:
    renderer, at = StatusRenderer(), 1000.0
    for version, step in enumerate(changes, start=1):
        at += step[2]
        view = world(version, at, step)
        for stuck in (False, True):
            expected = convert.status(view, stuck=stuck).model_dump(mode="json")
            assert renderer.render(view, stuck=stuck) == expected


def test_an_unchanged_entity_is_shared_from_one_render_to_the_next() -> None:
    idle, busy = (1, model.VmState.IDLE, False, 0), (2, model.VmState.BUSY, False, 0)
    renderer = StatusRenderer()
    view = world(1, 1000.0, ([idle, busy], [(3, False, 0)], 0.0, 0, set(), set(), set()))
    first = renderer.render(view, stuck=False)
    later = dataclasses.replace(view, version=2, at=1000.2)  # no VM's uptime ticks over
    again = renderer.render(later, stuck=False)
    assert [a is b for a, b in zip(first["vms"], again["vms"], strict=True)] == [True, True]
    assert again["queued_jobs"][0] is first["queued_jobs"][0]
    ticked = dataclasses.replace(view, version=3, at=1001.5)
    rendered = renderer.render(ticked, stuck=False)
    assert [vm["uptime_seconds"] for vm in rendered["vms"]] == [101, 100]
    assert rendered == convert.status(ticked, stuck=False).model_dump(mode="json")
