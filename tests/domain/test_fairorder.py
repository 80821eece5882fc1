"""The lazy fair order (``fairorder``) against its definition, and the planner's two ways to it.

The definition (``hostplan``'s docstring): a repository's k-th start comes at level
(held + k) / weight, and the fair order is every start sorted by (level, oldest job,
repository, k), warm-pool starts last. ``reference`` below is that sort, written out; the heap
merge must give the same list, and the per-scope runs (which never make a start nobody reads)
the same as the runs of the materialised round-robin.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from blacksmith_mini.domain import fairorder, hostplan, model, starts
from blacksmith_mini.domain import placement as pl
from blacksmith_mini.domain.hostset import HostPlan
from domain import builders

REPOS = ("acme/App", "acme/web", "acme/api")
POOLS = ("default", "large")
NOW = 1_000.0


def reference(
    wanted: list[starts.Candidate],
    *,
    held: dict[str, int],
    jobs: dict[int, model.Job],
    weights: dict[str, float],
) -> list[starts.Candidate]:
    """The fair order by its definition: one sort of every start."""
    per_repo: dict[str, list[starts.Candidate]] = collections.defaultdict(list)
    oldest: dict[str, float] = {}
    warm = []
    for found in wanted:
        job = jobs.get(found[3]) if found[3] is not None else None
        if job is None and found[2] != starts.QUEUED_JOB:
            warm.append(found)
            continue
        repo = (job.repository if job else found[1]).lower()
        per_repo[repo].append(found)
        if job is not None:
            oldest[repo] = min(oldest.get(repo, math.inf), job.created_at)
    weight = fairorder.lowered_weights(weights)
    keyed = sorted(
        ((held.get(r, 0) + k) / weight.get(r, 1.0), oldest.get(r, math.inf), r, k)
        for r, mine in per_repo.items()
        for k in range(len(mine))
    )
    return [per_repo[r][k] for _, _, r, k in keyed] + warm


@st.composite
def books(draw: st.DrawFn) -> tuple[starts.Wanted, dict[int, model.Job]]:
    """Wanted starts per (pool, repository) key, some keys warm (no queued job), each queued
    key with some of its jobs not yet stamped, in hand-out order."""
    ids = itertools.count(1)
    jobs: dict[int, model.Job] = {}
    wanted: dict[starts.DemandKey, int] = {}
    unstamped: dict[starts.DemandKey, list[int]] = {}
    oldest: dict[starts.DemandKey, float] = {}
    for key in itertools.product(POOLS, REPOS):
        count = draw(st.integers(0, 12))
        if not count:
            continue
        wanted[key] = count
        if draw(st.booleans()):  # a key with queued jobs (else: the warm pool's minimum)
            times = sorted(draw(st.lists(st.floats(0, 500), max_size=count + 3)))
            made = [builders.job(next(ids), repository=key[1], created_at=t) for t in times]
            jobs.update((job.id, job) for job in made)
            unstamped[key] = [job.id for job in made]
            oldest[key] = times[0] if times else draw(st.floats(0, 500))
    book = starts.wanted_starts(
        wanted=wanted, oldest=oldest, unstamped=unstamped, blocked=frozenset()
    )
    return book, jobs


weights_ = st.dictionaries(st.sampled_from([r.lower() for r in REPOS]), st.sampled_from([0.5, 2.0]))
held_ = st.dictionaries(st.sampled_from([r.lower() for r in REPOS]), st.integers(0, 20))


@settings(max_examples=300, deadline=None)
@given(book=books(), held=held_, weights=weights_)
def test_the_merge_and_both_runs_give_the_defined_order(
    book: tuple[starts.Wanted, dict[int, model.Job]],
    held: dict[str, int],
    weights: dict[str, float],
) -> None:
    wanted, jobs = book
    every = list(wanted.round_robin(wanted.order))
    assert len(every) == sum(wanted.counts.values())
    expected = reference(every, held=held, jobs=jobs, weights=weights)
    runs, warm = fairorder.runs_of(every, jobs=jobs)
    assert list(fairorder.merge(runs, warm, held=held, weights=weights)) == expected
    runs, warm = fairorder.runs_by_scope(wanted, jobs=jobs)
    assert list(fairorder.merge(runs, warm, held=held, weights=weights)) == expected


@settings(max_examples=200, deadline=None)
@given(book=books(), room=st.integers(0, 6), weights=weights_)
def test_allocating_the_wanted_starts_equals_allocating_them_all_made(
    book: tuple[starts.Wanted, dict[int, model.Job]], room: int, weights: dict[str, float]
) -> None:
    """Per scope (lazy), through the materialised runs, and from ``StartVm`` actions: the same
    starts on the same hosts."""
    wanted, jobs = book
    plan = HostPlan(
        hosts=(pl.Host(name="h1", vcpus=2 * room, memory_mib=8 * 1024 * room, disk_mib=10**7),),
        weights=weights,
    )
    pools = {
        "default": replace(builders.DEFAULT, max_vms=100),
        "large": replace(builders.LARGE, max_vms=3),
    }
    every = [starts.action(found) for found in wanted.round_robin(wanted.order)]
    made = hostplan.allocate(every, plan=plan, vms=[], pools=pools, jobs=jobs, max_vms=20)
    for by_scope in (True, False):
        lazy = hostplan.allocate_wanted(
            wanted, plan=plan, vms=[], pools=pools, jobs=jobs, max_vms=20, by_scope=by_scope
        )
        assert lazy == made


def test_only_the_starts_read_are_made() -> None:
    """10,000 wanted starts and room for 4: the per-scope runs make a handful, not 10,000."""
    made: list[starts.Candidate] = []

    class Counted(starts.Wanted):
        def start(self, key: starts.DemandKey, index: int) -> starts.Candidate:
            found = super().start(key, index)
            made.append(found)
            return found

    jobs = {i: builders.job(i, repository=REPOS[i % 3], created_at=i) for i in range(1, 10_001)}
    keys = [("default", repo) for repo in REPOS]
    unstamped = {key: [i for i in jobs if jobs[i].repository == key[1]] for key in keys}
    wanted = Counted(
        order=tuple(keys),
        counts={key: len(unstamped[key]) for key in keys},
        unstamped=unstamped,
        queued=frozenset(keys),
    )
    plan = HostPlan(hosts=(pl.Host(name="h1", vcpus=8, memory_mib=16 * 1024, disk_mib=10**7),))
    pools = {"default": replace(builders.DEFAULT, max_vms=10_000)}
    placed = hostplan.allocate_wanted(wanted, plan=plan, vms=[], pools=pools, jobs=jobs)
    assert len(placed) == 4
    assert {start.scope for start in placed} == set(REPOS)
    assert len(made) < 20
