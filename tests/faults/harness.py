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
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
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
