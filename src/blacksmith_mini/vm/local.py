"""The ``local`` driver: a "VM" is the runner as a host process in its own scratch directory.

Each VM lives in ``<data_dir>/vms/<name>/``: ``meta.json`` (who it is), ``supervisor.json``
(pid and start ticks of the supervisor that leads its process group), ``console.log``
(bounded), ``exit.json`` (how the runner exited), ``work/`` and, with a cache, ``cache.json``
(its boot data: url, token, fallback_url; mode 0600). Everything the driver needs to
account for a VM is on disk, so a restarted control plane adopts the VMs still running and
learns how the others ended. This gives NO isolation from the host: it is the embedded
default for trying Blacksmith Mini and for the simulator; use ``firecracker`` in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from blacksmith_mini.vm import console, driver, procs
from blacksmith_mini.vm.supervisor import write_atomically

log = logging.getLogger(__name__)
WATCH_SECONDS = 0.2
# What a runner inherits from the control plane's environment: nothing secret (never
# GITHUB_TOKEN or BLACKSMITH_* settings), just enough to run.
INHERITED_ENV = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "HOME",
    "USER",
    "LOGNAME",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


def runner_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a VM's runner starts with."""
    found = {
        key: value
        for key, value in os.environ.items()
        if key in INHERITED_ENV or key.startswith("LC_")
    }
    return {**found, **extra}


class LocalDriver:
    """Runs each VM's runner command as a supervised process group on this host."""

    name = "local"

    def __init__(
        self,
        *,
        data_dir: pathlib.Path,
        runner_command: Sequence[str],
        console_max_bytes: int = 256 * 1024,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        if not runner_command:
            raise driver.VmStartError("the local driver needs a runner command")
        self.root = data_dir / "vms"
        self.runner_command = list(runner_command)
        self.console_max_bytes = console_max_bytes
        self.environment = dict(environment or {})
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._scans: dict[int, console.ConsoleScan] = {}
        self._dirs: dict[int, pathlib.Path] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._last: dict[int, driver.VmObservation] = {}

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for vm_dir in sorted(self.root.iterdir()):
            meta = _read_json(vm_dir / "meta.json")
            if meta is None:
                continue
            self._dirs[int(meta["vm_id"])] = vm_dir
        self._watcher = asyncio.create_task(self._watch(), name="local-driver-watch")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for child in self._children.values():
            with contextlib.suppress(Exception):
                child.poll()

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    async def preflight(self, spec: driver.VmSpec) -> None:
        """The runner command must exist and the data directory must be writable."""
        program = self.runner_command[0]
        if "{" not in program and shutil.which(program) is None:
            raise driver.VmStartError(
                f"runner command {program!r} is not an executable on this host: install the "
                "GitHub Actions runner there or fix vm.runner_command"
            )
        if not os.access(self.root, os.W_OK):
            raise driver.VmStartError(
                f"the VM directory {self.root} is not writable: fix its permissions or data_dir"
            )

    async def start(self, spec: driver.VmSpec) -> driver.VmObservation:
        if spec.vm_id in self._dirs:
            found = self._observe_one(spec.vm_id, self._dirs[spec.vm_id])
            if found is not None:
                return found
        vm_dir = self.root / spec.name
        vm_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(
            vm_dir / "meta.json",
            {"vm_id": spec.vm_id, "name": spec.name, "started_at": time.time()},
        )
        secret = vm_dir / "jitconfig"
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(spec.jit_config)
        if spec.cache:  # for a runner wrapper that points its cache at it (0600: a token)
            fd = os.open(vm_dir / "cache.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(dict(spec.cache), handle)
        argv = [sys.executable, "-m", "blacksmith_mini.vm.supervisor", str(vm_dir), "--"]
        try:
            child = subprocess.Popen(
                [*argv, *self.runner_command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=runner_environment(self.environment),
            )
        except OSError as exc:
            secret.unlink(missing_ok=True)
            raise driver.VmStartError(
                f"cannot start the runner supervisor for VM {spec.vm_id}: {exc}; "
                "check that the data directory is writable"
            ) from exc
        ticks = procs.start_ticks(child.pid)
        write_atomically(vm_dir / "supervisor.json", {"pid": child.pid, "ticks": ticks})
        self._children[spec.vm_id] = child
        self._dirs[spec.vm_id] = vm_dir
        found = self._observe_one(spec.vm_id, vm_dir)
        assert found is not None
        return found

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        vm_dir = self._dirs.get(vm_id)
        if vm_dir is None:
            return
        supervisor = _read_json(vm_dir / "supervisor.json")
        if supervisor is None:
            return
        pid = int(supervisor["pid"])
        if not procs.is_same_process(pid, supervisor.get("ticks")):
            return
        procs.signal_group(pid, signal.SIGKILL if force else signal.SIGTERM)

    async def release(self, vm_id: int) -> None:
        vm_dir = self._dirs.pop(vm_id, None)
        self._scans.pop(vm_id, None)
        self._last.pop(vm_id, None)
        child = self._children.pop(vm_id, None)
        if vm_dir is None:
            return
        self._kill_if_alive(vm_dir)
        if child is not None:
            with contextlib.suppress(Exception):
                child.wait(timeout=5)
        shutil.rmtree(vm_dir, ignore_errors=True)

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        live = set(live_vm_ids)
        removed: list[str] = []
        if not self.root.exists():
            return removed
        for vm_dir in sorted(self.root.iterdir()):
            if not (vm_dir / "meta.json").exists() and not (vm_dir / "jitconfig").exists():
                continue  # not ours (another driver's VM directory)
            meta = _read_json(vm_dir / "meta.json")
            vm_id = int(meta["vm_id"]) if meta else None
            if vm_id is not None and vm_id in live:
                continue
            killed = self._kill_if_alive(vm_dir)
            shutil.rmtree(vm_dir, ignore_errors=True)
            if vm_id is not None:
                self._dirs.pop(vm_id, None)
                self._children.pop(vm_id, None)
            what = "process group and scratch dir" if killed else "scratch dir"
            removed.append(f"local VM {vm_dir.name}: removed orphan {what}")
        return removed

    # --- observation -----------------------------------------------------------------------

    async def observe(self) -> Mapping[int, driver.VmObservation]:
        return self._observe_all()

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        vm_dir = self._dirs.get(vm_id)
        if vm_dir is None:
            return ""
        return console.tail(vm_dir / "console.log", max_bytes=max_bytes)

    def _observe_all(self) -> dict[int, driver.VmObservation]:
        found = {}
        for vm_id, vm_dir in list(self._dirs.items()):
            observation = self._observe_one(vm_id, vm_dir)
            if observation is not None:
                found[vm_id] = observation
        return found

    def _observe_one(self, vm_id: int, vm_dir: pathlib.Path) -> driver.VmObservation | None:
        meta = _read_json(vm_dir / "meta.json")
        if meta is None:
            return None
        child = self._children.get(vm_id)
        if child is not None:
            child.poll()  # reap our own child so it does not linger as a zombie
        supervisor = _read_json(vm_dir / "supervisor.json") or {}
        pid = supervisor.get("pid")
        alive = pid is not None and procs.is_same_process(int(pid), supervisor.get("ticks"))
        scan = self._scans.setdefault(vm_id, console.ConsoleScan())
        console.scan(vm_dir / "console.log", scan, max_bytes=self.console_max_bytes)
        exit_info = _read_json(vm_dir / "exit.json")
        if exit_info is not None or not alive:
            alive = False
        return driver.VmObservation(
            vm_id=vm_id,
            name=str(meta["name"]),
            alive=alive,
            started_at=float(meta["started_at"]),
            pid=int(pid) if pid is not None else None,
            ip="127.0.0.1",
            runner_online=scan.runner_online,
            job_started=scan.job_started,
            job_finished=scan.job_finished,
            exit_code=exit_info.get("code") if exit_info else None,
            exit_signal=exit_info.get("signal") if exit_info else (None if alive else 9),
            ended_at=exit_info.get("ended_at") if exit_info else None,
        )

    def _kill_if_alive(self, vm_dir: pathlib.Path) -> bool:
        supervisor = _read_json(vm_dir / "supervisor.json")
        if supervisor is None:
            return False
        pid = int(supervisor["pid"])
        if procs.is_same_process(pid, supervisor.get("ticks")):
            procs.kill_group(pid)
            return True
        return False

    async def _watch(self) -> None:
        """Wake the control loop as soon as a VM's observation changes."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            try:
                current = self._observe_all()
            except Exception:  # pragma: no cover - never let the watcher die
                log.exception("local driver: observation failed")
                continue
            if current != self._last:
                self._last = current
                for callback in self._callbacks:
                    callback()


def _read_json(path: pathlib.Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
