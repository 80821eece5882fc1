"""Label matching: case-insensitive subset matching, smallest pool wins, reasons when none."""

from __future__ import annotations

from blacksmith_mini.domain import labels
from domain import builders

POOLS = (builders.DEFAULT, builders.LARGE)


def test_match_is_case_insensitive() -> None:
    assert labels.match(["Self-Hosted", "LINUX"], POOLS).pool == builders.DEFAULT


def test_smallest_matching_pool_wins() -> None:
    assert labels.match(["self-hosted"], POOLS).pool == builders.DEFAULT
    assert labels.match(["self-hosted", "large"], POOLS).pool == builders.LARGE


def test_unmatched_job_names_the_missing_labels() -> None:
    found = labels.match(["self-hosted", "gpu"], POOLS)
    assert found.pool is None
    assert found.unmatched_reason is not None and "gpu" in found.unmatched_reason


def test_job_without_labels_is_unmatched() -> None:
    assert labels.match([], POOLS).unmatched_reason == "the job has no runs-on labels"


def test_no_pools() -> None:
    assert labels.match(["self-hosted"], ()).unmatched_reason == "no pools are configured"


def test_normalize_strips_and_drops_empty() -> None:
    assert labels.normalize([" Linux ", "", "X64"]) == frozenset({"linux", "x64"})
