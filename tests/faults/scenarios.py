"""The fault scenarios, by name (the harness and its definitions are in ``harness``).

``tests/faults/test_faults.py`` asserts on each scenario's figures and ``bench/fault_report.py``
writes them to ``docs/FAULTS.md``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from faults import github_faults, host_faults, unkind_faults
from faults.harness import JOBS, Figures

__all__ = ["JOBS", "SCENARIOS", "Figures"]

SCENARIOS: dict[str, Callable[[pathlib.Path], Figures]] = {
    "github_outage": github_faults.github_outage,
    "github_timeouts": github_faults.github_timeouts,
    "rate_limit_403_retry_after": github_faults.rate_limited(403, 3),
    "rate_limit_429_retry_after": github_faults.rate_limited(429, 3),
    "rate_limit_403_no_retry_after": github_faults.rate_limited(403, None),
    "rate_limit_429_no_retry_after": github_faults.rate_limited(429, None),
    "vm_start_failures": host_faults.vm_start_failures,
    "vm_crash": host_faults.vm_crash,
    "disk_full": host_faults.disk_full,
    "db_locked": host_faults.db_locked,
    "killed_during_boot": host_faults.killed_during_boot,
    "killed_during_teardown": host_faults.killed_during_teardown,
    "lagging_busy": unkind_faults.lagging_busy,
    "start_keeps_failing": unkind_faults.start_keeps_failing,
}
