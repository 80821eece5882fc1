"""Proof under faults: for each scenario of ``scenarios.py`` (GitHub outage, time-outs and rate
limits, VM start failures and crashes, a full disk, a locked database, the control plane
killed during boots and teardowns) every job completes (or, where the fault makes GitHub fail
it, its failure is recorded), no job runs twice and nothing leaks."""

from __future__ import annotations

import pathlib

import pytest

from faults import scenarios

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_scenario(name: str, tmp_path: pathlib.Path) -> None:
    figures = scenarios.SCENARIOS[name](tmp_path)
    if figures.skipped:
        pytest.skip(figures.skipped)
    context = f"\n{figures.describe()}\n(server log: {tmp_path / (name + '-server.log')})"
    assert figures.queued >= scenarios.JOBS, context
    assert figures.run_twice == 0, f"a job ran twice{context}"
    assert figures.leaked_total == 0, f"resources leaked{context}"
    assert figures.completed == figures.queued, f"not every job completed{context}"
    assert figures.failed == figures.expected_failed, f"unexpected failures{context}"
    assert figures.settle_seconds is not None, f"did not settle{context}"
    failed_checks = [check for check, ok in figures.checks.items() if not ok]
    assert not failed_checks, f"{failed_checks}{context}"
    assert figures.problems() == [], context
