"""Observing GitHub: every repository polled concurrently, off the control loop's lock.

The observer is a task of its own. Every ``interval`` seconds (or at once when woken) it polls
the queued and open runs of every repository at the same time (inside the client's rate-limit
guard, which caps concurrency and spaces mutations), refreshes open jobs that left those lists,
and lists our runners in every scope. The result is handed to the loop as an ``Observation``
that its next tick folds in under its lock: VM management never waits for GitHub.

At organization scope it also keeps the list of repositories to poll (the App installation's,
or the organization's) and which of them the runner group does not serve, refreshed every
``ORG_REFRESH_SECONDS``: GitHub never hands those repositories' jobs to our runners.

One repository failing never stalls the others: a 404 (gone), a 403 (no access) or a 301
(renamed: the client follows it) is recorded in that repository's ``RepoHealth`` with what to
do, and the rest are polled and their runners listed and cleaned as usual. No exception
escapes a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from blacksmith_mini.domain import groups, model
from blacksmith_mini.github import errors, port, transport
from blacksmith_mini.woken import woken

log = logging.getLogger(__name__)
MAX_SINGLE_JOB_REFRESH = 25
CONCURRENCY = 8
# GitHub's secondary limit is 900 points a minute per REST endpoint (a GET costs 1) and the docs
# do not say a 304 is exempt from it: polls are spaced so they send at most this many a minute.
REQUESTS_PER_MINUTE_BUDGET = 600.0
ORG_REFRESH_SECONDS = 600.0
# Of GitHub's primary budget (x-ratelimit-limit an hour; 304 answers are free), this share is
# kept for registrations and deletions: polls are paced to spend only the rest before reset.
PRIMARY_RESERVE_SHARE = 0.1


@dataclasses.dataclass(frozen=True, kw_only=True)
class RepoHealth:
    """One polled repository: healthy, or what is wrong and what to do."""

    name: str
    healthy: bool = True
    error: str | None = None
    moved_to: str | None = None
    last_polled_at: float | None = None
    permanent: bool = False  # 404/403: it will not heal by itself; not needed for "complete"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Observation:
    """What one poll saw. ``complete``: every repository that can be polled was."""

    started_at: float
    jobs: tuple[model.Job, ...]
    runners: tuple[model.RunnerInfo, ...] | None  # None: no scope could be listed
    complete: bool


class GitHubObserver:
    """Polls GitHub on its own schedule and keeps the latest ``Observation`` for the loop."""

    def __init__(
        self,
        *,
        github: port.GitHubPort,
        repositories: Sequence[str],
        scopes: Sequence[str],
        open_jobs: Callable[[], Iterable[model.Job]],
        interval: float,
        organization: str | None = None,
        runner_group: str | None = None,
        prefix: str = "bm",
        on_result: Callable[[], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.github = github
        self.repositories: tuple[str, ...] = tuple(repositories)  # polled for jobs
        self.scopes = tuple(scopes)  # where our runners are listed
        self.organization = organization
        self.runner_group = runner_group or "Default"
        self.unserved: dict[str, str] = {}  # lower-cased repository -> why the group refuses it
        self._next_org_refresh = 0.0
        self._open_jobs = open_jobs
        self.prefix = prefix
        self.interval = interval
        self._on_result = on_result
        self._clock = clock
        self.health: dict[str, RepoHealth] = {}
        self.last_poll_seconds: float | None = None  # how long the last poll took
        self.last_poll_requests = 0  # REST requests the last poll sent
        self.effective_interval = interval  # stretched to stay inside the request budget
        self._polls = 0
        self._charged_per_poll: float | None = None  # smoothed; the first (cold) poll aside
        self._latest: Observation | None = None
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(CONCURRENCY)

    # --- the task --------------------------------------------------------------------------

    def start(self) -> None:
        self._due.set()  # poll at once at start-up
        self._task = asyncio.create_task(self._run(), name="github-observer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """GitHub changed (a webhook, the simulator): poll now rather than at the next interval."""
        self._due.set()

    async def refresh(self) -> None:
        """Poll now and keep the result for the loop's next tick (what the task does)."""
        self._latest = await self.poll()

    def take(self) -> Observation | None:
        """The newest observation not yet folded in by the loop, once."""
        latest, self._latest = self._latest, None
        return latest

    async def _run(self) -> None:
        while True:
            await woken(self._due, timeout=self.effective_interval)
            self._due.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:  # never lose the task; the next interval polls again
                log.exception("GitHub poll failed")
                continue
            self._on_result()

    # --- one poll --------------------------------------------------------------------------

    async def poll(self) -> Observation:
        """Poll every repository and scope concurrently; never raises ``GitHubError``."""
        started = self._clock()
        began, rate = time.monotonic(), self.github.rate
        sent_before, free_before = rate.requests, rate.not_modified
        if self.organization and started >= self._next_org_refresh:
            await self._refresh_organization(self.organization)
            self._next_org_refresh = started + ORG_REFRESH_SECONDS
        repositories = list(dict.fromkeys(self.repositories))
        results = await asyncio.gather(*(self._repository(name) for name in repositories))
        seen = [job for found in results if found is not None for job in found]
        complete = all(
            found is not None or self.health[name].permanent
            for name, found in zip(repositories, results, strict=True)
        )
        seen.extend(await self._refresh_stale(seen, repositories))
        listings = await asyncio.gather(*(self._runners(scope) for scope in self.scopes))
        listed = [listing for listing in listings if listing is not None]
        runners = tuple(r for listing in listed for r in listing) if listed else None
        for name in list(self.health):
            if name not in repositories:
                del self.health[name]
        self._account(
            seconds=time.monotonic() - began,
            sent=rate.requests - sent_before,
            charged=(rate.requests - sent_before) - (rate.not_modified - free_before),
            rate=rate,
        )
        return Observation(
            started_at=started,
            jobs=tuple(seen),
            runners=runners,
            complete=complete and len(listed) == len(listings),
        )

    async def _refresh_organization(self, organization: str) -> None:
        """The repositories to poll, and which of them the runner group does not serve."""
        try:
            found = await self.github.organization_repositories(organization)
            group = await self.github.runner_group(organization, self.runner_group)
            private = await self.github.organization_repository_visibility(organization)
        except errors.GitHubError as exc:
            log.warning("the repositories of %s could not be listed now: %s", organization, exc)
            return
        self.repositories = tuple(found)
        access = groups.GroupAccess(
            name=group.name,
            visibility=group.visibility,
            allows_public_repositories=group.allows_public_repositories,
            selected_repositories=(
                None
                if group.selected_repositories is None
                else frozenset(name.lower() for name in group.selected_repositories)
            ),
        )
        self.unserved = groups.unserved(access, repositories=found, private=private)

    def _account(
        self, *, seconds: float, sent: int, charged: int, rate: transport.RateState
    ) -> None:
        """Record the poll's cost; space polls so they stay inside GitHub's budgets: the
        secondary limit's requests a minute (304s included, as the docs do not exempt them),
        and the primary budget left until its reset (only answers other than 304 count),
        less a reserve for registrations: the fewer requests left, the slower the polls."""
        self.last_poll_seconds, self.last_poll_requests = seconds, sent
        self._polls += 1
        if self._polls > 1:  # the first poll fills the ETag cache: every answer is charged once
            before = self._charged_per_poll
            self._charged_per_poll = charged if before is None else (before + charged) / 2
        cost = self._charged_per_poll or 0.0
        secondary = sent * 60.0 / REQUESTS_PER_MINUTE_BUDGET if self._polls > 1 else 0.0
        primary = 0.0
        if rate.remaining is not None and rate.limit and rate.reset_at and cost:
            spendable = rate.remaining - PRIMARY_RESERVE_SHARE * rate.limit
            left = max(60.0, rate.reset_at - self._clock())
            primary = left if spendable <= 0 else min(left, cost * left / spendable)
        stretched = max(self.interval, secondary, primary)
        if abs(stretched - self.effective_interval) > max(1.0, 0.1 * self.effective_interval):
            log.info(
                "a GitHub poll of %d repositories sent %d requests (%d charged, %s of %s left):"
                " polling every %.0fs (configured %.0fs) to stay inside GitHub's budgets",
                len(self.health),
                sent,
                charged,
                rate.remaining,
                rate.limit,
                stretched,
                self.interval,
            )
        self.effective_interval = stretched

    async def _repository(self, name: str) -> list[model.Job] | None:
        async with self._slots:
            try:
                jobs = await self.github.open_jobs(name)
            except errors.GitHubError as exc:
                self._unhealthy(name, exc)
                return None
        moved = self.github.moved.get(name)
        if moved is not None and self.health.get(name, RepoHealth(name=name)).moved_to != moved:
            log.warning("repository %s moved to %s (GitHub answered 301)", name, moved)
        self.health[name] = RepoHealth(
            name=name, healthy=True, moved_to=moved, last_polled_at=self._clock()
        )
        return jobs

    def _unhealthy(self, name: str, exc: errors.GitHubError) -> None:
        permanent = isinstance(exc, (errors.NotFound, errors.PermissionDenied))
        if isinstance(exc, errors.NotFound):
            text = (
                f"GitHub answers 404 for {name}: the repository was deleted, renamed without a "
                "redirect, or the credentials cannot see it; fix github.repositories or the "
                "token's / App installation's repository access"
            )
        else:
            text = str(exc)
        before = self.health.get(name)
        if before is None or before.error != text:
            log.warning("repository %s cannot be polled: %s", name, text)
        self.health[name] = RepoHealth(
            name=name,
            healthy=False,
            error=text,
            moved_to=self.github.moved.get(name),
            last_polled_at=before.last_polled_at if before else None,
            permanent=permanent,
        )

    async def _refresh_stale(
        self, seen: Sequence[model.Job], repositories: Sequence[str]
    ) -> list[model.Job]:
        """Open jobs we know that left the open runs' lists: ask for each (bounded)."""
        seen_ids = {job.id for job in seen}
        healthy = {
            name.lower()
            for name in repositories
            if self.health.get(name, RepoHealth(name=name)).healthy
        }
        stale = [
            job
            for job in self._open_jobs()
            if job.id not in seen_ids and job.repository.lower() in healthy
        ][:MAX_SINGLE_JOB_REFRESH]
        found = await asyncio.gather(*(self._job(job) for job in stale))
        return [job for job in found if job is not None]

    async def _job(self, job: model.Job) -> model.Job | None:
        async with self._slots:
            try:
                return await self.github.job(job.repository, job.id)
            except errors.NotFound:
                log.warning("job %s is gone from GitHub; keeping what we know", job.id)
            except errors.GitHubError as exc:
                log.info("job %s could not be refreshed now: %s", job.id, exc)
        return None

    async def _runners(self, scope: str) -> list[model.RunnerInfo] | None:
        async with self._slots:
            try:
                return await self.github.runners(scope, prefix=self.prefix)
            except errors.GitHubError as exc:
                log.warning("runners of %s could not be listed: %s", scope, exc)
                return None

    def snapshot(self) -> Mapping[str, RepoHealth]:
        return dict(self.health)
