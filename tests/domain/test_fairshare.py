"""Fair share: a table per rule, and hypothesis for the promises of weighted max-min fairness."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import demand, fairshare
from blacksmith_mini.domain.fairshare import Demand
from domain import builders


def wants(**queued: int) -> list[Demand]:
    """Demands by repository name (``app=3``), the first one the oldest."""
    return [
        Demand(repository=f"acme/{name}", queued=count, oldest=float(index))
        for index, (name, count) in enumerate(queued.items())
    ]


def starts(
    demands: list[Demand],
    available: int,
    *,
    held: dict[str, int] | None = None,
    weights: dict[str, float] | None = None,
) -> dict[str, int]:
    found = fairshare.share(demands, held=held or {}, available=available, weights=weights)
    return {repo.removeprefix("acme/"): count for repo, count in found.starts.items()}


# --- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("demands", "available", "expected"),
    [
        (wants(app=3, web=2), 10, {"app": 3, "web": 2}),  # enough for all: nobody is capped
        (wants(matrix=256, app=2, web=3), 10, {"matrix": 5, "app": 2, "web": 3}),
        (wants(matrix=256, app=20, web=20), 9, {"matrix": 3, "app": 3, "web": 3}),
        (wants(matrix=256, app=1), 1, {"matrix": 1, "app": 0}),  # tie: oldest job first
        (wants(app=1, matrix=256), 1, {"app": 1, "matrix": 0}),
        (wants(app=5, web=5), 0, {"app": 0, "web": 0}),
        (wants(app=5, web=5), -3, {"app": 0, "web": 0}),
        (wants(app=0, web=4), 3, {"web": 3}),  # no queued jobs: no demand
        ([], 5, {}),
    ],
)
def test_water_filling_without_held_vms(
    demands: list[Demand], available: int, expected: dict[str, int]
) -> None:
    assert starts(demands, available) == expected


@pytest.mark.parametrize(
    ("held", "available", "expected"),
    [
        ({"acme/matrix": 12}, 4, {"matrix": 0, "app": 4}),  # below its share: served first
        ({"acme/matrix": 12}, 20, {"matrix": 4, "app": 16}),  # levels meet at 16 each
        ({"acme/matrix": 3, "acme/app": 1}, 4, {"matrix": 1, "app": 3}),
        ({"acme/idle": 50}, 6, {"matrix": 3, "app": 3}),  # a repository without demand
    ],
)
def test_vms_already_held_count_towards_the_share(
    held: dict[str, int], available: int, expected: dict[str, int]
) -> None:
    assert starts(wants(matrix=256, app=100), available, held=held) == expected


@pytest.mark.parametrize(
    ("weights", "app", "available", "expected"),
    [
        ({"acme/app": 2.0}, 100, 9, {"matrix": 3, "app": 6}),
        ({"acme/matrix": 3.0}, 100, 8, {"matrix": 6, "app": 2}),
        ({"acme/app": 0.5}, 100, 3, {"matrix": 2, "app": 1}),
        ({"acme/app": 100.0}, 5, 9, {"matrix": 4, "app": 5}),  # capped by its demand
    ],
)
def test_weights_scale_the_share(
    weights: dict[str, float], app: int, available: int, expected: dict[str, int]
) -> None:
    assert starts(wants(matrix=256, app=app), available, weights=weights) == expected


@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_a_weight_must_be_positive(weight: float) -> None:
    with pytest.raises(ValueError, match="weight"):
        fairshare.share(wants(app=1), held={}, available=1, weights={"acme/app": weight})


def test_ties_at_the_same_age_go_by_name() -> None:
    demands = [Demand(repository=name, queued=5, oldest=0.0) for name in ("b/x", "a/x")]
    found = fairshare.share(demands, held={}, available=1)
    assert found.starts == {"a/x": 1, "b/x": 0}


def test_one_repository_in_several_entries_is_one_repository() -> None:
    demands = [
        Demand(repository="acme/app", queued=2, oldest=5.0, key=("default", "acme/app")),
        Demand(repository="acme/app", queued=9, oldest=1.0, key=("large", "acme/app")),
        Demand(repository="acme/web", queued=9, oldest=3.0, key=("default", "acme/web")),
    ]
    found = fairshare.share(demands, held={}, available=8)
    assert found.starts == {"acme/app": 4, "acme/web": 4}
    assert found.by_key == {
        ("acme/app", ("large", "acme/app")): 2,  # oldest first, then round-robin
        ("acme/app", ("default", "acme/app")): 2,
        ("acme/web", ("default", "acme/web")): 4,
    }


def test_a_key_gets_no_more_than_its_queued_jobs() -> None:
    demands = [
        Demand(repository="acme/app", queued=1, oldest=0.0, key=("default", "acme/app")),
        Demand(repository="acme/app", queued=9, oldest=1.0, key=("large", "acme/app")),
    ]
    found = fairshare.share(demands, held={}, available=6)
    assert found.by_key == {
        ("acme/app", ("default", "acme/app")): 1,
        ("acme/app", ("large", "acme/app")): 5,
    }


@pytest.mark.parametrize(
    ("wanted", "weight", "capacity", "expected"),
    [
        ({"a": 5, "b": 5}, {"a": 1.0, "b": 1.0}, 20, {"a": 5.0, "b": 5.0}),
        ({"a": 2, "b": 30}, {"a": 1.0, "b": 1.0}, 20, {"a": 2.0, "b": 18.0}),
        ({"a": 30, "b": 30}, {"a": 1.0, "b": 3.0}, 20, {"a": 5.0, "b": 15.0}),
        (dict.fromkeys("abc", 30), dict.fromkeys("abc", 1.0), 20, dict.fromkeys("abc", 20 / 3)),
    ],
)
def test_fair_shares_fill_the_capacity_evenly(
    wanted: dict[str, int], weight: dict[str, float], capacity: int, expected: dict[str, float]
) -> None:
    found = fairshare.fair_shares(wanted, weight=weight, capacity=capacity)
    assert found == pytest.approx(expected)


# --- why a job waits -------------------------------------------------------------------------


def test_why_queued_names_the_vms_held() -> None:
    found = fairshare.share(
        wants(app=30, web=30), held={"acme/app": 12, "acme/web": 4}, available=4
    )
    assert found.starts == {"acme/app": 0, "acme/web": 4}
    assert (
        found.why_queued("acme/app") == "fair share: acme/app holds 12 of 20 VMs (its share is 10)"
    )
    assert (
        found.why_queued("acme/web") == "fair share: acme/web holds 8 of 20 VMs (its share is 10)"
    )


def test_why_queued_shows_a_fractional_share() -> None:
    found = fairshare.share(wants(a=9, b=9, c=9), held={}, available=10)
    assert found.why_queued("acme/c") == "fair share: acme/c holds 3 of 10 VMs (its share is 3.3)"


@pytest.mark.parametrize(
    ("demands", "held", "available", "repository"),
    [
        (wants(app=3, web=3), {}, 10, "acme/app"),  # everything queued starts
        (wants(app=30), {"acme/app": 4}, 2, "acme/app"),  # alone: max_vms is the reason
        (wants(app=3), {}, 3, "acme/unknown"),
    ],
)
def test_no_fair_share_reason_when_fairness_is_not_why(
    demands: list[Demand], held: dict[str, int], available: int, repository: str
) -> None:
    found = fairshare.share(demands, held=held, available=available)
    assert found.why_queued(repository) is None


def test_demands_from_queued_jobs_per_key() -> None:
    policy = builders.policy(org_scope=True, scopes=("org:acme",))
    jobs = [
        builders.job(1, repository="acme/app", created_at=5.0),
        builders.job(2, repository="acme/web", created_at=3.0),
        builders.job(3, repository="acme/app", created_at=2.0),
        builders.job(4, repository="acme/app", job_labels=("self-hosted", "large"), created_at=9),
    ]
    found = fairshare.demands_from(demand.queued_by_key(jobs, policy))
    assert sorted(found, key=lambda d: (d.key or ("", ""), d.repository)) == [
        Demand(repository="acme/app", queued=2, oldest=2.0, key=("default", "org:acme")),
        Demand(repository="acme/web", queued=1, oldest=3.0, key=("default", "org:acme")),
        Demand(repository="acme/app", queued=1, oldest=9.0, key=("large", "org:acme")),
    ]


# --- properties ------------------------------------------------------------------------------

REPOS = [f"acme/r{index}" for index in range(6)]
demands_st = st.lists(
    st.builds(
        Demand,
        repository=st.sampled_from(REPOS),
        queued=st.integers(0, 300),
        oldest=st.floats(0, 1000, allow_nan=False),
        key=st.sampled_from([None, ("default", "x"), ("large", "x")]),
    ),
    max_size=10,
)
held_st = st.dictionaries(st.sampled_from(REPOS), st.integers(0, 100))
weights_st = st.dictionaries(st.sampled_from(REPOS), st.sampled_from([0.5, 1.0, 2.0, 3.0]))


@settings(max_examples=300, deadline=None)
@given(demands=demands_st, held=held_st, weights=weights_st, available=st.integers(-5, 400))
def test_fair_share_promises(
    demands: list[Demand], held: dict[str, int], weights: dict[str, float], available: int
) -> None:
    found = fairshare.share(demands, held=held, available=available, weights=weights)
    queued: dict[str, int] = {}
    for item in demands:
        if item.queued > 0:
            queued[item.repository] = queued.get(item.repository, 0) + item.queued
    total = sum(found.starts.values())
    # Never more than available or than demanded, and no start left unused while some wait.
    assert total == min(max(0, available), sum(queued.values()))
    for repo, count in found.starts.items():
        assert 0 <= count <= queued[repo]
    # No repository starved while another ends above its share thanks to this tick's starts:
    # if A ends below min(its want, its fair share), no B got a start taking it past its own.
    for a, count_a in found.starts.items():
        ends_a = held.get(a, 0) + count_a
        if ends_a < min(held.get(a, 0) + queued[a], found.shares[a]) - 1e-9:
            for b, count_b in found.starts.items():
                if count_b > 0:
                    assert held.get(b, 0) + count_b <= math.ceil(found.shares[b] - 1e-9), (a, b)
    # The split per key adds up and stays within each key's queued jobs.
    for repo, count in found.starts.items():
        assert sum(n for (r, _), n in found.by_key.items() if r == repo) == count
    for (repo, key), count in found.by_key.items():
        cap = sum(d.queued for d in demands if d.repository == repo and d.key == key)
        assert count <= cap


@settings(max_examples=200, deadline=None)
@given(demands=demands_st, held=held_st, weights=weights_st, available=st.integers(0, 400))
def test_fair_shares_split_exactly_the_capacity(
    demands: list[Demand], held: dict[str, int], weights: dict[str, float], available: int
) -> None:
    found = fairshare.share(demands, held=held, available=available, weights=weights)
    wanted = {r: held.get(r, 0) + found.queued.get(r, 0) for r in found.holds}
    capacity = sum(held.get(r, 0) for r in found.holds) + available
    assert sum(found.shares.values()) == pytest.approx(min(capacity, sum(wanted.values())))
    for repo, value in found.shares.items():
        assert value <= wanted[repo] + 1e-9
