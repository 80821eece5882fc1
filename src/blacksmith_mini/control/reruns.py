"""Re-running jobs our infrastructure failed: the effect of ``domain.reruns``' ``RerunJob``.

Once per job, whatever happens. The re-run is recorded in the store's control state (key
``reruns``: shared by every host, kept across restarts) *before* GitHub is asked, so a crash
mid-request, a lost answer or a restart never makes a second request; then GitHub is asked;
then the outcome is told as an event and recorded:

- ``job.rerun``: GitHub re-ran it (a new attempt of the run, a new job served like any other);
- ``job.rerun_refused``: GitHub declined (``RerunRefused``: the run is still in progress, past
  the 30-day window, the job is unknown) or cannot be asked (a missing Actions: write
  permission, bad credentials); the message says why and what to do;
- ``job.rerun_failed``: GitHub could not be reached, or rate-limited us.

A refusal because the run is still in progress, an outage and a rate limit are tried again,
``RETRY_SECONDS`` later (or when the limit lifts), at most ``MAX_TRIES`` times in all; anything
else is final. A retry after a lost answer cannot re-run the job twice: while the first
re-run's attempt runs GitHub refuses ("already running"), and the domain skips a job whose
later attempt it knows. Records are keyed by ``RerunJob.key`` (the logical job across
attempts), pruned ``KEEP_SECONDS`` (7 days) after their first try (the domain only considers
jobs completed within a day) and capped at ``MAX_RECORDS``, the newest kept.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from blacksmith_mini.control.state import LoopState
from blacksmith_mini.domain import actions as act
from blacksmith_mini.domain import model
from blacksmith_mini.domain import reruns as domain_reruns
from blacksmith_mini.github import errors, port
from blacksmith_mini.store import repository

log = logging.getLogger(__name__)
STATE_KEY = "reruns"
KEEP_SECONDS = 7 * 86400.0
MAX_RECORDS = 5000
MAX_TRIES = 5
RETRY_SECONDS = 120.0
Outcome = Literal["rerun", "refused", "retry", "skipped"]
Records = dict[str, dict[str, Any]]


def blocked_keys(records: Mapping[str, Mapping[str, Any]], *, now: float) -> frozenset[str]:
    """The keys not to re-run now: every record but those due for another try."""
    return frozenset(key for key, record in records.items() if not _due(record, now))


async def already_rerun(store: repository.Store, *, now: float) -> frozenset[str]:
    """``blocked_keys`` of the persisted records: the domain's ``already``."""
    return blocked_keys(await _load(store), now=now)


async def perform_rerun(
    action: act.RerunJob, *, github: port.GitHubPort, store: repository.Store, now: float
) -> Outcome:
    """Record the re-run, ask GitHub for it, tell what came of it (see the module)."""
    records = await _load(store)
    known = records.get(action.key)
    if known is not None and not _due(known, now):
        return "skipped"
    tries = int(known.get("tries", 0)) + 1 if known else 1
    first = float(known.get("at", now)) if known else now
    records[action.key] = {
        "job_id": action.job_id,
        "repository": action.repository,
        "at": first,
        "tries": tries,
        "state": "asking",
        "updated_at": now,
    }
    await _save(store, records, now=now)  # first: whatever happens next, never asked twice
    kind, text, retry_at = await _ask(github, action, now=now)
    retry_at = retry_at if tries < MAX_TRIES else None
    outcome: Outcome = "rerun" if kind == "job.rerun" else "retry" if retry_at else "refused"
    if outcome != "rerun":
        where = f"job {action.job_id} of {action.repository}"
        text = f"re-run of {where} ({action.reason}): {text}; {_next(retry_at, tries, now=now)}"
        log.warning("%s", text)
    await store.add_event(kind=kind, message=text, at=now, job_id=action.job_id, vm_id=action.vm_id)
    records[action.key] |= {"state": outcome, "retry_at": retry_at, "updated_at": now}
    await _save(store, records, now=now)
    return outcome


async def _ask(
    github: port.GitHubPort, action: act.RerunJob, *, now: float
) -> tuple[str, str, float | None]:
    """GitHub's answer as (event kind, text, when to try again or None)."""
    try:
        await github.rerun_job(action.repository, action.job_id)
    except errors.RerunRefused as exc:
        return "job.rerun_refused", str(exc), now + RETRY_SECONDS if exc.still_running else None
    except (errors.RateLimited, errors.GitHubUnavailable) as exc:
        until = exc.until if isinstance(exc, errors.RateLimited) else 0.0
        return "job.rerun_failed", str(exc), max(now + RETRY_SECONDS, until)
    except errors.GitHubError as exc:  # a missing permission, bad credentials: final
        return "job.rerun_refused", str(exc), None
    where = f"job {action.job_id} of {action.repository}"
    return "job.rerun", f"{where} re-run at GitHub in a new attempt: {action.reason}", None


def _next(retry_at: float | None, tries: int, *, now: float) -> str:
    if retry_at is None:
        return f"not tried again (try {tries} of at most {MAX_TRIES})"
    return f"will try again in {retry_at - now:.0f}s (try {tries} of at most {MAX_TRIES})"


def _due(record: Mapping[str, Any], now: float) -> bool:
    return record.get("state") == "retry" and float(record.get("retry_at") or 0.0) <= now


async def _load(store: repository.Store) -> Records:
    value = (await store.control_state()).get(STATE_KEY, {})
    jobs = value.get("jobs", {})
    return {str(key): dict(record) for key, record in jobs.items() if isinstance(record, dict)}


async def _save(store: repository.Store, records: Records, *, now: float) -> None:
    kept = {
        key: record
        for key, record in records.items()
        if float(record.get("at", 0.0)) >= now - KEEP_SECONDS
    }
    newest = sorted(kept.items(), key=lambda item: float(item[1].get("at", 0.0)), reverse=True)
    await store.set_control_state(STATE_KEY, {"jobs": dict(newest[:MAX_RECORDS])}, at=now)


async def rerun_infrastructure_failures(
    *,
    state: LoopState,
    policy: model.Policy,
    github: port.GitHubPort,
    store: repository.Store,
    now: float,
) -> list[tuple[act.RerunJob, Exception]]:
    """This tick's re-runs of jobs our infrastructure failed (pools that opted in); the ones
    that raised, with their errors, for the loop to record."""
    if not any(pool.rerun_infrastructure_failures for pool in policy.pools):
        return []
    already = await already_rerun(store, now=now)
    failed: list[tuple[act.RerunJob, Exception]] = []
    for action in domain_reruns.plan_reruns(
        jobs=[*state.jobs.values(), *state.recent_completed],
        vms=[*state.vms.values(), *state.gone],
        pools=policy.pools,
        already=already,
        now=now,
    ):
        try:
            await perform_rerun(action, github=github, store=store, now=now)
        except Exception as exc:
            log.warning("re-run of job %s failed: %s", action.job_id, exc)
            failed.append((action, exc))
    return failed
