"""Fault scenarios on our side: failing starts, crashing VMs, a full disk, a locked database, the
control plane killed mid-boot or mid-teardown (see ``harness``)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
from collections.abc import Iterator

from faults.harness import JOBS, Figures, Run, _lag


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
