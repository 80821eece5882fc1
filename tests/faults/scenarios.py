"""Fault scenarios against the real server (``blacksmith-mini up --simulate``, a subprocess).

Each scenario starts the server on a fresh data dir, queues a handful of short jobs on the
simulated GitHub, injects one fault, waits (bounded) for everything to settle and returns
``Figures``: jobs queued, completed (with conclusion), failed, run twice, resources leaked and
the time to settle, plus the scenario's own checks (was the fault reported, did the loop keep
ticking...). ``tests/faults/test_faults.py`` asserts on them and ``bench/fault_report.py``
writes them to ``docs/FAULTS.md``.

Durations are compressed so the whole suite runs in a few minutes: a GitHub outage of
"minutes" lasts ``OUTAGE_SECONDS``; a rate limit without ``retry-after`` makes the client wait
for ``x-ratelimit-reset`` (about an hour), which is checked and then cut short by restarting
the control plane; the safety-net REST poll runs every 3 s instead of 30 s.

Definitions used by every scenario:

- *completed*: completed at the simulated GitHub **and** recorded as completed with the same
  conclusion by the control plane (``GET /api/jobs/{id}``).
- *failed*: completed with a conclusion other than the one the job was queued with (every job
  here is queued to succeed, so a failure is the fault's doing).
- *run twice*: a job linked to more than one VM (in ``GET /api/vms?include_gone=true`` or in
  the database's ``vms`` table), or run at GitHub by a runner that is not one of our VMs.
- *leaked*, counted once everything settled: VM processes under ``<data_dir>/vms``, VM state
  dirs and runner registrations at the simulated GitHub that belong to no active VM, active
  VMs; and VM processes left after a SIGTERM of the control plane.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import errno
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from server.harness import Server, kill_all, processes_under

JOBS = 6
SHORT_SECONDS = 0.5
OUTAGE_SECONDS = 20.0
SETTLE_TIMEOUT = 60.0
POLL = 0.2
BASE_ENV = {
    # The REST safety net (webhooks are on in simulate mode) every 3 s instead of 30 s.
    "BLACKSMITH_GITHUB__POLL_INTERVAL_WITH_WEBHOOKS": "3",
}


@dataclasses.dataclass
class Figures:
    scenario: str
    fault: str
    queued: int = 0
    completed: int = 0
    conclusions: dict[str, int] = dataclasses.field(default_factory=dict)
    failed: int = 0
    expected_failed: int = 0
    run_twice: int = 0
    leaked: dict[str, int] = dataclasses.field(default_factory=dict)
    settle_seconds: float | None = None
    checks: dict[str, bool] = dataclasses.field(default_factory=dict)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: str | None = None

    @property
    def leaked_total(self) -> int:
        return sum(self.leaked.values())

    def problems(self) -> list[str]:
        """Everything that is not as it must be; empty when the scenario passed."""
        found = []
        if self.settle_seconds is None:
            found.append(f"did not settle within {SETTLE_TIMEOUT:.0f}s")
        if self.completed != self.queued:
            found.append(f"{self.completed} of {self.queued} jobs completed")
        if self.failed != self.expected_failed:
            found.append(f"{self.failed} jobs failed, expected {self.expected_failed}")
        if self.run_twice:
            found.append(f"{self.run_twice} jobs ran twice")
        if self.leaked_total:
            found.append(f"leaked: { {k: v for k, v in self.leaked.items() if v} }")
        found.extend(f"check failed: {name}" for name, ok in self.checks.items() if not ok)
        return found

    def describe(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, default=str)


class Run:
    """One scenario's server, jobs and bookkeeping. Use as a context manager: on exit the
    server is stopped (SIGTERM, then SIGKILL) and no VM process is left behind."""

    def __init__(
        self,
        workdir: pathlib.Path,
        scenario: str,
        fault: str,
        *,
        data_dir: pathlib.Path | None = None,
        **env: str,
    ) -> None:
        self.workdir = workdir
        self.data_dir = data_dir or workdir / "data"
        self.env = {**BASE_ENV, **env}
        self.server: Server | None = None
        self.log = workdir / f"{scenario}-server.log"
        self.planned: dict[int, str] = {}
        self.expected_failures: set[int] = set()
        self.started_at: float | None = None
        self.figures = Figures(scenario=scenario, fault=fault)

    # --- the server --------------------------------------------------------------------------

    def __enter__(self) -> Run:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Server:
        port = self.server.port if self.server is not None else None
        server = Server(self.data_dir, port=port, **self.env)
        server.log = self.log  # outside the data dir: it may be on a full disk
        self.server = server
        return server.start()

    def alive(self) -> bool:
        return (
            self.server is not None
            and self.server.process is not None
            and (self.server.process.poll() is None)
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if not self.alive():
            return
        assert self.server is not None and self.server.process is not None
        try:
            self.server.stop(sig, timeout=15)
        except subprocess.TimeoutExpired:
            self.server.process.kill()
            self.server.process.wait(timeout=5)

    def restart(self, sig: int) -> None:
        self.stop(sig)
        self.start()

    def close(self) -> None:
        self.stop(signal.SIGTERM)
        if self.data_dir.exists():
            left = processes_under(self.data_dir)
            if left:
                self.figures.leaked["vm_processes_after_sigterm"] = len(left)
            kill_all(left)

    # --- talking to it -----------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.server is not None
        try:
            return self.server.request(method, path, body)
        except ValueError:  # an answer that is not JSON (a plain 500)
            return 500, None

    def get(self, path: str) -> Any:
        status, answer = self.request("GET", path)
        return answer if status == 200 else None

    def status(self) -> dict[str, Any] | None:
        found = self.get("/api/status")
        return found if isinstance(found, dict) else None

    def queue(self, count: int = JOBS, *, duration: float = SHORT_SECONDS) -> list[int]:
        ids = []
        for _ in range(count):
            status, answer = self.request(
                "POST",
                "/api/simulator/jobs",
                {"duration_seconds": duration, "conclusion": "success"},
            )
            assert status == 201, (status, answer)
            ids.append(int(answer["id"]))
            self.planned[int(answer["id"])] = "success"
        if self.started_at is None:
            self.started_at = time.monotonic()
        return ids

    def fault(self, **body: Any) -> None:
        status, answer = self.request("POST", "/_sim/faults", body)
        assert status == 200, (status, answer)

    def sim_state(self) -> dict[str, Any]:
        """The simulated GitHub's state as persisted in the data dir."""
        path = self.data_dir / "simulated-github.json"
        for _ in range(20):
            with contextlib.suppress(OSError, ValueError):
                return dict(json.loads(path.read_text()))
            time.sleep(0.05)
        return {"jobs": {}, "runners": {}, "runs": {}}

    def db_vms(self) -> list[dict[str, Any]]:
        uri = f"file:{self.data_dir / 'blacksmith.db'}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
                db.row_factory = sqlite3.Row
                rows = db.execute(
                    "SELECT vm_id, name, state, job_id, death_reason, ran_job FROM vms"
                ).fetchall()
        except sqlite3.Error as exc:
            self.figures.details["db_error"] = str(exc)
            return []
        return [dict(row) for row in rows]

    def wait(self, check: Callable[[], Any], *, timeout: float, every: float = POLL) -> Any:
        """``check()``'s first truthy answer, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(Exception):
                found = check()
                if found:
                    return found
            if time.monotonic() >= deadline:
                return None
            time.sleep(every)

    def wait_for_vm(self, states: tuple[str, ...] = ("pending", "booting", "idle", "busy")) -> Any:
        found = self.wait(
            lambda: [v for v in (self.get("/api/vms") or {})["vms"] if v["status"] in states],
            timeout=20,
            every=0.02,
        )
        assert found, f"no VM in {states} within 20s (log: {self.log})"
        return found

    def watch(self, seconds: float, every: float = 0.25) -> list[dict[str, Any]]:
        """Sample ``/api/status`` (and ``/api/health``) for ``seconds``; each sample is the
        status (or {} when it did not answer) with ``_health`` and ``_at`` added."""
        samples = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            health, _ = self.request("GET", "/api/health")
            sample = dict(self.status() or {})
            sample["_health"] = health
            sample["_at"] = time.time()
            samples.append(sample)
            time.sleep(every)
        return samples

    def check(self, name: str, ok: bool, **details: Any) -> None:
        self.figures.checks[name] = bool(ok)
        if details:
            self.figures.details[name] = details

    # --- settling and counting ---------------------------------------------------------------

    def leaks(self, *, database: bool = True) -> dict[str, int]:
        active = (self.get("/api/vms") or {}).get("vms")
        if active is None:
            raise RuntimeError("the server does not answer")
        names = {vm["name"] for vm in active}
        vms_root = self.data_dir / "vms"
        dirs = [d.name for d in vms_root.iterdir() if d.is_dir()] if vms_root.exists() else []
        runners = [r["name"] for r in self.sim_state()["runners"].values()]
        processes = [pid for pid in processes_under(self.data_dir) if not _belongs(pid, names)]
        found = {
            "vm_processes": len(processes),
            "vm_dirs": len([d for d in dirs if d not in names]),
            "runners": len([r for r in runners if r not in names]),
            "active_vms": len(active),
        }
        if database:  # VM rows still active in the database that the loop holds as gone
            found["vm_rows_active_in_db"] = len(
                [vm for vm in self.db_vms() if vm["state"] != "gone" and vm["name"] not in names]
            )
        return found

    def _settled(self) -> bool:
        jobs = self.sim_state()["jobs"]
        if any(jobs.get(str(i), {}).get("status") != "completed" for i in self.planned):
            return False
        for job_id in self.planned:
            answer = self.get(f"/api/jobs/{job_id}")
            if answer is None or answer["status"] != "completed":
                return False
        return not any(self.leaks(database=False).values())

    def settle(self, timeout: float = SETTLE_TIMEOUT, *, again: bool = False) -> None:
        """Wait (bounded) until every job completed and nothing is left; then count.

        ``again``: a second settle (after a restart) keeps the first time to settle, and
        forgets it if this one fails; leaks are the worst seen by any count."""
        if self.started_at is None:
            self.started_at = time.monotonic()
        settled = self.wait(self._settled, timeout=timeout, every=0.25)
        if not again and settled:
            self.figures.settle_seconds = round(time.monotonic() - self.started_at, 1)
        elif again and not settled:
            self.figures.settle_seconds = None
        self.count()

    def count(self) -> None:
        figures = self.figures
        sim_jobs = self.sim_state()["jobs"]
        conclusions: collections.Counter[str] = collections.Counter()
        completed = failed = 0
        disagree = {}
        for job_id, planned in self.planned.items():
            at_github = sim_jobs.get(str(job_id), {})
            ours = self.get(f"/api/jobs/{job_id}") or {}
            if at_github.get("status") != "completed" or ours.get("status") != "completed":
                continue
            if at_github.get("conclusion") != ours.get("conclusion"):
                disagree[job_id] = (at_github.get("conclusion"), ours.get("conclusion"))
                continue
            completed += 1
            conclusions[str(at_github["conclusion"])] += 1
            failed += at_github["conclusion"] != planned
        figures.queued = len(self.planned)
        figures.completed = completed
        figures.conclusions = dict(conclusions)
        figures.failed = failed
        figures.expected_failed = len(self.expected_failures)
        if disagree:
            figures.details["conclusions_disagree"] = disagree
        # Run twice: a job linked to more than one VM, or run by a runner that is not ours.
        api_vms = (self.get("/api/vms?include_gone=true") or {}).get("vms", [])
        db_vms = self.db_vms()
        links: dict[int, set[int]] = collections.defaultdict(set)
        for vm in [*api_vms, *db_vms]:
            if vm.get("job_id") is not None:
                links[int(vm["job_id"])].add(int(vm["vm_id"]))
        ours_names = {vm["name"] for vm in [*api_vms, *db_vms]}
        twice = {job_id for job_id in self.planned if len(links.get(job_id, ())) > 1}
        strangers = {
            job_id
            for job_id in self.planned
            if sim_jobs.get(str(job_id), {}).get("runner_name") not in (None, *ours_names)
        }
        figures.run_twice = len(twice | strangers)
        if twice or strangers:
            figures.details["run_twice"] = {
                "linked_to_several_vms": {j: sorted(links[j]) for j in twice},
                "run_by_unknown_runner": sorted(strangers),
            }
        figures.details["vms_used"] = len({vm["vm_id"] for vm in [*api_vms, *db_vms]})
        figures.details["death_reasons"] = dict(
            collections.Counter(str(vm.get("death_reason")) for vm in db_vms)
        )
        try:
            for kind, number in self.leaks().items():
                figures.leaked[kind] = max(figures.leaked.get(kind, 0), number)
        except RuntimeError:
            figures.leaked["server_not_answering"] = 1


def _belongs(pid: int, names: set[str]) -> bool:
    """Whether a VM process belongs to one of the active VMs (by its dir name)."""
    try:
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return any(f"/vms/{name}" in cmdline or f"/vms/{name}" in cwd for name in names)


def _lag(samples: list[dict[str, Any]]) -> float:
    """The longest the loop went without finishing a tick, as seen in the samples."""
    worst = 0.0
    for sample in samples:
        last = (sample.get("loop") or {}).get("last_tick_at")
        if last is not None:
            worst = max(worst, sample["_at"] - last)
    return round(worst, 1)


# --- the scenarios ---------------------------------------------------------------------------


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
                seen = run.status() or {"github": {}}
                time.sleep(retry_after / 2)
                left = (run.get("/_sim/faults") or {}).get("rate_limits")
                run.check(
                    "no request is sent during the back-off (retry-after)", left == 2, left=left
                )
                blocked = seen["github"].get("blocked_until")
                wait = (
                    None if blocked is None else round(blocked - time.time() + retry_after / 2, 1)
                )
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


def vm_start_failures(workdir: pathlib.Path) -> Figures:
    fault = "the VM driver fails every 3rd start"
    with Run(
        workdir, "vm_start_failures", fault, BLACKSMITH_SIMULATOR__VM_START_FAILURE_EVERY="3"
    ) as run:
        run.start()
        run.queue()
        run.settle()
        failed_starts = run.figures.details["death_reasons"].get("start_failed", 0)
        run.check("starts did fail (and were replaced)", failed_starts >= 2, count=failed_starts)
        return run.figures


def vm_crash(workdir: pathlib.Path) -> Figures:
    fault = "SIGKILL of a busy VM's process group (max_vms = 2, 1 long + 5 short jobs)"
    with Run(workdir, "vm_crash", fault, BLACKSMITH_VM__MAX_VMS="2") as run:
        run.start()
        (doomed,) = run.queue(1, duration=60)
        run.queue(JOBS - 1, duration=1.0)
        run.expected_failures.add(doomed)
        victim = run.wait(
            lambda: next(
                v
                for v in run.get("/api/vms")["vms"]
                if v["job_id"] == doomed and v["status"] == "busy" and v["pid"]
            ),
            timeout=20,
            every=0.05,
        )
        assert victim, f"job {doomed} never got a busy VM (log: {run.log})"
        os.killpg(int(victim["pid"]), signal.SIGKILL)
        samples = run.watch(6, every=0.1)
        peak = max(
            len([v for v in s.get("vms", []) if v["vm_id"] != victim["vm_id"]]) for s in samples
        )
        gone_after = next(
            (
                round(s["_at"] - samples[0]["_at"], 1)
                for s in samples
                if s.get("vms") is not None and all(v["vm_id"] != victim["vm_id"] for v in s["vms"])
            ),
            None,
        )
        run.check(
            "the crashed VM is found gone within 3 s",
            gone_after is not None and gone_after < 3,
            gone_after=gone_after,
        )
        run.check("its slot is reused for queued jobs at once (2 other VMs)", peak >= 2, peak=peak)
        run.settle()
        detail = run.get(f"/api/jobs/{doomed}") or {}
        run.check(
            "the lost job is recorded as failed",
            detail.get("status") == "completed" and detail.get("conclusion") == "failure",
        )
        crashed = run.get(f"/api/vms/{victim['vm_id']}") or {}
        run.check(
            "the VM is recorded as crashed",
            crashed.get("death_reason") == "crashed",
            death_reason=crashed.get("death_reason"),
        )
        return run.figures


@contextlib.contextmanager
def small_disk(where: pathlib.Path, size_mib: int = 48) -> Iterator[pathlib.Path | None]:
    """A tmpfs of ``size_mib`` mounted at ``where`` (None when it cannot be mounted)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)


def fill(directory: pathlib.Path) -> pathlib.Path:
    """Fill the file system with one file until not a byte more fits."""
    path = directory / "filler"
    chunk = 1024 * 1024
    with open(path, "wb", buffering=0) as handle:
        while chunk >= 512:
            try:
                handle.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    return path


def disk_full(workdir: pathlib.Path) -> Figures:
    fault = "the data dir's disk (a 48 MiB tmpfs) is filled for 6 s, then freed"
    figures = Figures(scenario="disk_full", fault=fault)
    with small_disk(workdir / "disk") as disk:
        if disk is None:
            figures.skipped = "cannot mount a tmpfs here (needs root)"
            return figures
        with Run(workdir, "disk_full", fault, data_dir=disk / "data") as run:
            run.start()
            run.queue(duration=1.0)
            run.wait_for_vm()
            filler = fill(disk)
            samples = run.watch(6)
            filler.unlink()
            text = run.log.read_text(errors="replace")
            clear = [
                m for m in ("No space left on device", "database or disk is full") if m in text
            ]
            run.check(
                "the error is clear in the log (ENOSPC / disk is full)", bool(clear), found=clear
            )
            run.check(
                "the API and health answer throughout", all(s["_health"] == 200 for s in samples)
            )
            shown = sorted(
                {str((s.get("loop") or {}).get("last_error")) for s in samples} - {"None"}
            )
            run.check(
                "the error is shown to the operator (/api/status loop.last_error)",
                any("disk is full" in e or "No space left" in e for e in shown),
                shown=[e.splitlines()[0] for e in shown],
            )
            run.settle()
            _check_intact(run)
            # What was recorded must still be true after a restart: nothing comes back.
            run.restart(signal.SIGTERM)
            run.settle(timeout=30, again=True)
            _check_intact(run)
            return run.figures


def _check_intact(run: Run) -> None:
    db = run.data_dir / "blacksmith.db"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as con:
        result = con.execute("PRAGMA integrity_check").fetchone()[0]
    run.check("the database passes integrity_check", result == "ok", result=result)
    state = json.loads((run.data_dir / "simulated-github.json").read_text())
    run.check("the simulated GitHub's state file is intact", "jobs" in state)


def db_locked(workdir: pathlib.Path) -> Figures:
    hold = 5.0
    fault = f"another process holds BEGIN EXCLUSIVE on blacksmith.db for {hold:.0f} s"
    with Run(workdir, "db_locked", fault) as run:
        run.start()
        run.queue()
        run.wait_for_vm()
        con = sqlite3.connect(run.data_dir / "blacksmith.db", timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            samples = run.watch(hold)
            con.execute("COMMIT")
        finally:
            con.close()
        run.check(
            "the API and health answer while locked", all(s["_health"] == 200 for s in samples)
        )
        lag = _lag(samples)
        run.check("the lock was felt (the loop waited on a write)", lag >= 2.0, max_lag=lag)
        ticks = (run.status() or {}).get("loop", {}).get("ticks", 0)
        caught_up = run.wait(lambda: (run.status() or {})["loop"]["ticks"] >= ticks + 3, timeout=10)
        run.check("the loop ticks again after the lock is released", bool(caught_up))
        run.settle()
        return run.figures


def killed_during_boot(workdir: pathlib.Path) -> Figures:
    fault = "SIGKILL of the control plane right after jobs are queued (VMs booting); restart"
    with Run(workdir, "killed_during_boot", fault) as run:
        run.start()
        run.queue()
        booting = run.wait_for_vm(states=("pending", "booting"))
        run.figures.details["vms_at_kill"] = [v["status"] for v in booting]
        run.restart(signal.SIGKILL)
        run.settle()
        return run.figures


def killed_during_teardown(workdir: pathlib.Path) -> Figures:
    fault = "SIGKILL of the control plane right after a job completes (VM reaping); restart"
    with Run(workdir, "killed_during_teardown", fault) as run:
        run.start()
        ids = run.queue()
        done = run.wait(
            lambda: [i for i in ids if run.sim_state()["jobs"][str(i)]["status"] == "completed"],
            timeout=30,
            every=0.02,
        )
        assert done, f"no job completed within 30s (log: {run.log})"
        run.figures.details["vms_at_kill"] = [
            v["status"] for v in (run.get("/api/vms") or {}).get("vms", [])
        ]
        run.restart(signal.SIGKILL)
        run.settle()
        return run.figures


SCENARIOS: dict[str, Callable[[pathlib.Path], Figures]] = {
    "github_outage": github_outage,
    "github_timeouts": github_timeouts,
    "rate_limit_403_retry_after": rate_limited(403, 3),
    "rate_limit_429_retry_after": rate_limited(429, 3),
    "rate_limit_403_no_retry_after": rate_limited(403, None),
    "rate_limit_429_no_retry_after": rate_limited(429, None),
    "vm_start_failures": vm_start_failures,
    "vm_crash": vm_crash,
    "disk_full": disk_full,
    "db_locked": db_locked,
    "killed_during_boot": killed_during_boot,
    "killed_during_teardown": killed_during_teardown,
}
