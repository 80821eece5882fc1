"""Branch scopes and GitHub's lookup rule, as documented (see ``cache/scope.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from blacksmith_mini.cache import scope

MAIN, FEATURE = "refs/heads/main", "refs/heads/feature"
PULL = "refs/pull/7/merge"


@dataclass(frozen=True)
class Entry:
    id: int
    scope: str
    key: str
    version: str = "v"
    created_at: float = 0.0


def test_a_push_reads_its_branch_then_the_default_and_writes_its_branch() -> None:
    assert scope.own_scopes(ref=FEATURE, default_branch="main") == scope.Scopes(
        reads=(FEATURE, MAIN), write=FEATURE
    )
    assert scope.own_scopes(ref=MAIN, default_branch="main") == scope.Scopes(
        reads=(MAIN,), write=MAIN
    )


def test_a_pull_request_reads_merge_ref_base_default_and_writes_only_its_merge_ref() -> None:
    found = scope.own_scopes(ref=PULL, default_branch="main", base_ref="release")
    assert found == scope.Scopes(reads=(PULL, "refs/heads/release", MAIN), write=PULL)
    assert scope.own_scopes(ref=PULL, default_branch="main", base_ref="main").reads == (PULL, MAIN)


def test_a_pull_request_never_writes_a_branch_scope() -> None:
    found = scope.own_scopes(ref=MAIN, default_branch="main", base_ref="main")
    assert found.write is None and found.reads == (MAIN,)


def test_cache_modes_narrow_the_scopes_like_the_client() -> None:
    full = scope.own_scopes(ref=FEATURE, default_branch="main")
    assert scope.apply_mode(full, None) == full
    assert scope.apply_mode(full, "write") == full
    assert scope.apply_mode(full, "something-new") == full  # unknown modes are permissive
    assert scope.apply_mode(full, "read") == scope.Scopes(reads=full.reads, write=None)
    assert scope.apply_mode(full, " Write-Only ") == scope.Scopes(reads=(), write=FEATURE)
    assert scope.apply_mode(full, "none") == scope.Scopes(reads=(), write=None)


def test_keys_follow_the_clients_rule() -> None:
    assert scope.valid_key("a" * 512) and not scope.valid_key("a" * 513)
    assert not scope.valid_key("a,b") and not scope.valid_key("")


def test_the_version_is_the_one_the_client_sends() -> None:
    # seen on the wire from @actions/cache 6.3.0 saving paths ["data"] with zstd on Linux
    expected = "3ad75f27293d65a135214b8c82b296080f911dc107e52f1e7ec871a2eda46e69"
    assert scope.client_version(["data"], "zstd-without-long") == expected


def pick(
    entries: list[Entry], key: str, *restore: str, reads: tuple[str, ...] = (FEATURE, MAIN)
) -> int | None:
    found = scope.pick(entries, key=key, restore_keys=restore, version="v", reads=reads)
    return None if found is None else found.id


def test_an_exact_key_beats_a_prefix_and_a_prefix_gives_the_newest() -> None:
    entries = [
        Entry(1, FEATURE, "deps-a", created_at=1),
        Entry(2, FEATURE, "deps-abc", created_at=3),
        Entry(3, FEATURE, "deps-ab", created_at=2),
    ]
    assert pick(entries, "deps-a") == 1
    assert pick(entries, "deps-") == 2
    assert pick(entries, "deps-x", "deps-ab") == 3  # a restore key's exact match first
    assert pick(entries, "deps-x", "nothing", "deps-ab") == 3  # restore keys in order


def test_the_search_is_scope_major_own_branch_first() -> None:
    entries = [Entry(1, MAIN, "deps-1", created_at=9), Entry(2, FEATURE, "deps-0", created_at=1)]
    # the own branch's restore-key match wins over the default branch's exact match
    assert pick(entries, "deps-1", "deps-") == 2
    assert pick(entries, "deps-1", reads=(MAIN,)) == 1


def test_the_version_must_match_and_unreadable_scopes_are_invisible() -> None:
    entries = [Entry(1, FEATURE, "k", version="other"), Entry(2, "refs/heads/sibling", "k")]
    assert pick(entries, "k") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from([FEATURE, MAIN, PULL]),
            st.sampled_from(["a", "ab", "abc", "b"]),
            st.sampled_from(["v", "w"]),
            st.integers(0, 5),
        ),
        max_size=12,
    ),
    st.sampled_from(["a", "ab", "abc", "b", "c"]),
    st.lists(st.sampled_from(["a", "b", "x"]), max_size=3),
)
def test_a_pick_is_always_readable_same_version_and_prefixed(
    rows: list[tuple[str, str, str, int]], key: str, restore: list[str]
) -> None:
    entries = [Entry(i, s, k, v, float(t)) for i, (s, k, v, t) in enumerate(rows)]
    found = scope.pick(entries, key=key, restore_keys=restore, version="v", reads=(FEATURE, MAIN))
    if found is not None:
        assert found.scope in (FEATURE, MAIN) and found.version == "v"
        assert any(found.key.startswith(probe) for probe in [key, *restore])
    elif any(e.scope in (FEATURE, MAIN) and e.version == "v" for e in entries):
        assert not any(
            e.key.startswith(p)
            for e in entries
            if e.scope in (FEATURE, MAIN) and e.version == "v"
            for p in [key, *restore]
        )
