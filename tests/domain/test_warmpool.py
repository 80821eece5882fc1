"""The warm pool's idle target from demand: jobs arriving within one refill time, the 90th
percentile over the last 15 minutes and the same hour last week, bounded by min_idle, max_idle
and free room; fixed pools keep min_idle; a faster refill needs fewer idle VMs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from blacksmith_mini.domain import warmpool as wp

NOW = 1_000_000.0


def burst(at: float, count: int) -> list[float]:
    return [at + i * 0.1 for i in range(count)]


def target(
    arrivals: list[float], refills: tuple[float, ...] = (30.0,), **bounds: int | None
) -> wp.IdleTarget:
    settings: dict[str, int | None] = {"min_idle": 0, "max_idle": 20, "room": 50}
    settings.update(bounds)
    return wp.idle_target(
        pool="default",
        min_idle=int(settings["min_idle"] or 0),
        max_idle=settings["max_idle"],
        room=int(settings["room"] or 0),
        arrivals=arrivals,
        refills=refills,
        now=NOW,
    )


def test_a_fixed_pool_keeps_min_idle_whatever_comes() -> None:
    found = target(burst(NOW - 60, 30), min_idle=2, max_idle=None)
    assert (found.target, found.adaptive, found.reason) == (2, False, "fixed: min_idle 2")


def test_no_demand_keeps_min_idle_and_says_why() -> None:
    found = target([], (), min_idle=1)
    assert found.target == 1 and "raised to min_idle 1" in found.reason
    assert "(assumed)" in found.reason  # no start measured: the default refill


def test_steady_bursts_set_the_target_to_their_size_per_refill() -> None:
    # every 60 s, 4 jobs at once; a refill takes 30 s: 4 arrive within a refill half the time
    arrivals = [a for minute in range(15) for a in burst(NOW - 900 + minute * 60, 4)]
    found = target(arrivals)
    assert found.target == 4 and found.recent_p90 == 4
    assert "over the last 15 min" in found.reason


def test_last_weeks_hour_raises_the_target_before_the_burst() -> None:
    monday = [a for i in range(10) for a in burst(NOW - wp.WEEK_SECONDS - 300 + i * 60, 6)]
    found = target(monday)
    assert found.target == 6 and found.last_week_p90 == 6 and found.recent_p90 == 0
    assert "same hour last week" in found.reason


def test_bounds_max_idle_and_room() -> None:
    arrivals = [a for m in range(15) for a in burst(NOW - 900 + m * 60, 9)]
    assert target(arrivals, max_idle=5).target == 5
    capped = target(arrivals, room=3)
    assert capped.target == 3 and "free room (3 more VMs fit)" in capped.reason
    assert target(arrivals, room=0, min_idle=2).target == 2  # min_idle stands; max_vms caps it


def test_a_fast_refill_needs_fewer_idle_vms() -> None:
    spread = [NOW - 900 + i * 10.0 for i in range(90)]
    assert target(spread, (28.0, 30.0, 35.0)).target == 3  # one job every 10 s, 30 s refills
    assert target(spread, (0.8, 1.2)).target == 1


def test_demand_counts_arrivals_within_one_refill() -> None:
    found = wp.demand([10.0, 12.0, 40.0], start=0.0, end=60.0, refill=20.0)
    assert found == [2, 1, 1, 0]  # at 15, 30, 45, 60: (t - 20, t]


arrival_times = st.lists(st.floats(min_value=NOW - 1000, max_value=NOW), max_size=60)


@given(
    times=arrival_times,
    extra=arrival_times,
    min_idle=st.integers(0, 4),
    spread=st.integers(0, 8),
    room=st.integers(-2, 12),
)
def test_properties(
    times: list[float], extra: list[float], min_idle: int, spread: int, room: int
) -> None:
    max_idle = min_idle + spread
    more = times + extra
    base = target(times, (20.0,), min_idle=min_idle, max_idle=max_idle, room=room)
    grown = target(more, (20.0,), min_idle=min_idle, max_idle=max_idle, room=room)
    for found in (base, grown):
        assert min_idle <= found.target <= max(min_idle, max_idle)
        assert found.target <= max(min_idle, room)
    assert grown.target >= base.target  # more demand never lowers the target


def vm(vm_id: int, **fields: object) -> wp.model.Vm:
    base: dict[str, object] = {
        "vm_id": vm_id,
        "name": f"bm-{vm_id}",
        "pool": "default",
        "scope": "acme/app",
        "labels": ("self-hosted",),
        "vcpus": 2,
        "memory_mib": 1024,
        "state": wp.model.VmState.IDLE,
        "state_since": NOW - 600,
        "created_at": NOW - 700,
    }
    base.update(fields)
    return wp.model.Vm(**base)  # type: ignore[arg-type]


def test_idle_vm_seconds_count_ready_to_its_job_start_within_the_window() -> None:
    S = wp.model.VmState
    vms = [
        vm(1, ready_at=NOW - 600),  # idle all along: 10 min in the window
        vm(2, ready_at=NOW - 300, state=S.BUSY, job_id=7),  # idle until its job started
        vm(3, ready_at=NOW - 7200, state=S.GONE, ended_at=NOW - 3000),  # mostly before it
        vm(4, ready_at=None, state=S.BOOTING),  # never ready: not idle
        vm(5, ready_at=NOW - 100, state=S.BUSY, state_since=NOW - 40),  # job unknown: busy since
        vm(6, ready_at=NOW - 100, pool="large"),
    ]
    found = wp.idle_vm_seconds(vms, {7: NOW - 200}, since=NOW - 3600, now=NOW)
    assert found == {"default": 600 + 100 + 600 + 60, "large": 100}
