"""Fault scenarios of GitHub's unkind habits: a ``busy`` flag and job status that lag the
runner, and a start that keeps failing (see ``harness`` for the definitions)."""

from __future__ import annotations

import pathlib
import signal
import time

from blacksmith_mini.domain import backoff
from faults.harness import JOBS, Figures, Run

LAG_SECONDS = 20.0
FAILING_SECONDS = 60.0


def first_hour_bound() -> int:
    """Start attempts one failing pool can make in its first hour under the back-off."""
    attempts, at = 1, 0.0
    while True:
        at += backoff.delay(attempts)
        if at >= 3600:
            return attempts
        attempts += 1


def lagging_busy(workdir: pathlib.Path) -> Figures:
    fault = (
        f"GitHub's REST answers (runner busy, job status) lag the runners by {LAG_SECONDS:.0f} s;"
        " webhooks off, so the loop sees only the lagging REST view"
    )
    with Run(
        workdir,
        "lagging_busy",
        fault,
        BLACKSMITH_SIMULATOR__WEBHOOKS="false",
        BLACKSMITH_VM__MAX_VMS=str(JOBS + 4),
    ) as run:
        run.start()
        run.fault(lag_seconds=LAG_SECONDS)
        run.queue(duration=3.0)
        run.settle(timeout=LAG_SECONDS * 3 + 30)
        counters = run.get("/_sim/faults") or {}
        registrations = len(run.db_vms())
        run.figures.details["runner_registrations"] = registrations
        run.figures.details["busy_runners_killed"] = counters.get("killed_busy_runners")
        run.check(
            "no busy runner was killed (deleted while GitHub still said not busy)",
            counters.get("killed_busy_runners") == 0,
            killed=counters.get("killed_busy_runners"),
        )
        run.check(
            "one runner registration per job: the lag created no phantom demand",
            registrations == JOBS,
            registrations=registrations,
            jobs=JOBS,
        )
        return run.figures


def start_keeps_failing(workdir: pathlib.Path) -> Figures:
    fault = (
        f"every VM start fails for {FAILING_SECONDS:.0f} s (the driver refuses), then the "
        "control plane is restarted with the fault gone"
    )
    with Run(
        workdir, "start_keeps_failing", fault, BLACKSMITH_SIMULATOR__VM_START_FAILURE_EVERY="1"
    ) as run:
        run.start()
        run.queue()
        began = time.monotonic()
        samples = run.watch(FAILING_SECONDS)
        attempts = len(run.db_vms())
        elapsed = max(1.0, time.monotonic() - began)
        backoffs = [
            pool.get("start_backoff")
            for sample in samples
            for pool in sample.get("pools", [])
            if pool.get("start_backoff")
        ]
        reasons = [
            job.get("waiting_reason") or "" for s in samples for job in s.get("queued_jobs", [])
        ]
        run.figures.details["start_attempts_in_window"] = f"{attempts} in {elapsed:.0f} s"
        run.figures.details["registrations_first_hour_bound"] = first_hour_bound()
        run.figures.details["registrations_per_hour_after"] = round(
            backoff.attempts_per_hour_bound()
        )
        # one a tick (1 s) per stuck job without a back-off, as before (max_vms 5 at once)
        run.figures.details["registrations_per_hour_without_backoff"] = 3600 * 5
        run.check(
            "starts are backed off: a handful of attempts, not one (or five) a tick",
            0 < attempts <= 5,
            attempts=attempts,
        )
        run.check(
            "the back-off is shown in the pool's status entry", bool(backoffs), seen=len(backoffs)
        )
        run.check(
            "why-queued says the starts are failing and when the next try is",
            any("VM starts failing in pool" in r and "next try in" in r for r in reasons),
        )
        run.env.pop("BLACKSMITH_SIMULATOR__VM_START_FAILURE_EVERY")
        run.restart(signal.SIGTERM)
        run.settle()
        return run.figures
