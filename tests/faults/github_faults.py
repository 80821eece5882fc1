"""Fault scenarios on GitHub's side: outages, time-outs, rate limits (see ``harness``)."""

from __future__ import annotations

import pathlib
import signal
import time
from collections.abc import Callable

from faults.harness import OUTAGE_SECONDS, Figures, Run, _lag


def github_outage(workdir: pathlib.Path) -> Figures:
    fault = f"GitHub answers 503 to every REST call for {OUTAGE_SECONDS:.0f} s (an outage)"
    with Run(workdir, "github_outage", fault) as run:
        run.start()
        run.queue()
        run.wait_for_vm()
        run.fault(outage_seconds=OUTAGE_SECONDS)
        samples = run.watch(OUTAGE_SECONDS)
        run.check(
            "the outage is reported (github.reachable false, last_error set)",
            any(
                (s.get("github") or {}).get("reachable") is False
                and (s.get("github") or {}).get("last_error")
                for s in samples
            ),
        )
        run.check("the API and health answer throughout", all(s["_health"] == 200 for s in samples))
        run.settle()
        return run.figures


def github_timeouts(workdir: pathlib.Path) -> Figures:
    delay, timeout, window = 8.0, 1, 12.0
    fault = (
        f"GitHub answers after {delay:.0f} s for {window:.0f} s; github.request_timeout ="
        f" {timeout} s (time-outs)"
    )
    with Run(
        workdir, "github_timeouts", fault, BLACKSMITH_GITHUB__REQUEST_TIMEOUT=str(timeout)
    ) as run:
        run.start()
        run.queue()
        run.wait_for_vm()
        run.fault(delay_seconds=delay)
        samples = run.watch(window)
        run.fault(delay_seconds=0)
        errors_seen = sorted(
            {str((s.get("github") or {}).get("last_error")) for s in samples} - {"None"}
        )
        run.check(
            "time-outs are reported as GitHub errors",
            any("time" in e.lower() or "did not answer within" in e for e in errors_seen),
            errors_seen=errors_seen,
        )
        # A tick makes a few GitHub calls, each cut at the timeout (about 3 s in all here);
        # without the timeout, one call alone holds the tick for 8 s.
        lag = _lag(samples)
        run.check("no tick hangs on a slow GitHub (loop lag < 6 s)", lag < 6.0, max_lag=lag)
        run.settle()
        return run.figures


def rate_limited(status: int, retry_after: int | None) -> Callable[[pathlib.Path], Figures]:
    name = f"rate_limit_{status}_" + ("retry_after" if retry_after else "no_retry_after")

    def scenario(workdir: pathlib.Path) -> Figures:
        if retry_after:
            fault = f"3 answers HTTP {status} rate limit with retry-after: {retry_after}"
        else:
            fault = (
                f"1 answer HTTP {status} rate limit, no retry-after, x-ratelimit-remaining 0 "
                "(wait for x-ratelimit-reset, ~1 h: cut short by a restart)"
            )
        with Run(workdir, name, fault) as run:
            run.start()
            if retry_after:
                run.queue()
                run.wait_for_vm()
                run.fault(rate_limits=3, rate_limit_status=status, retry_after=retry_after)
                hit = run.wait(lambda: run.get("/_sim/faults")["rate_limits"] < 3, timeout=15)
                run.check("the rate limit is hit", bool(hit))
                # GitHub is polled off the loop; the view shows the block from its next tick
                seen = run.wait(
                    lambda: (s := run.status()) and s["github"].get("blocked_until") and s,
                    timeout=retry_after,
                    every=0.05,
                ) or {"github": {}}
                seen_at = time.time()
                left_at_block = (run.get("/_sim/faults") or {}).get("rate_limits")
                time.sleep(retry_after / 2)
                left = (run.get("/_sim/faults") or {}).get("rate_limits")
                run.check(
                    "no request is sent during the back-off (retry-after)",
                    left is not None and left == left_at_block,
                    left=left,
                    left_when_blocked=left_at_block,
                )
                blocked = seen["github"].get("blocked_until")
                wait = None if blocked is None else round(blocked - seen_at, 1)
                run.check(
                    "the back-off is shown in github.blocked_until",
                    wait is not None and 0 < wait <= retry_after,
                    blocked_for=wait,
                )
                run.settle()
                return run.figures
            run.fault(rate_limits=1, rate_limit_status=status, retry_after=None)
            run.queue()
            first = run.wait(
                lambda: (s := run.status()) and s["github"]["blocked_until"] and s, timeout=15
            )
            run.check("the rate limit is seen", bool(first))
            if first:
                github = first["github"]
                run.check(
                    "the client waits for x-ratelimit-reset",
                    github["blocked_until"] >= (github["rate_limit_reset_at"] or 0) - 5
                    and github["blocked_until"] > time.time() + 600,
                    blocked_until=github["blocked_until"],
                    reset_at=github["rate_limit_reset_at"],
                )
                time.sleep(3)
                later = run.status() or {"github": {}}
                run.check(
                    "no request is sent while blocked",
                    later["github"].get("requests_total") == github["requests_total"],
                    before=github["requests_total"],
                    after=later["github"].get("requests_total"),
                )
            run.restart(signal.SIGTERM)  # the hour, compressed
            run.settle()
            return run.figures

    scenario.__name__ = name
    return scenario
