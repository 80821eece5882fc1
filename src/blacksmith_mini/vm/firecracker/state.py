"""The per-VM state record ``<data_dir>/vms/<name>/firecracker.json``, written before host changes.

It names every host resource the VM holds (slot, tap, namespace, disk, jail, cgroup, processes),
so ``release`` can undo them in order and a restarted control plane can adopt running VMs. It
never contains the JIT config. Files the supervisor writes beside it (console, events, exit) are
read through :func:`read_events` and :func:`read_exit`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from blacksmith_mini.vm.firecracker import naming, supervisor

RECORD = "firecracker.json"


@dataclasses.dataclass(kw_only=True)
class VmRecord:
    """What the driver knows about one VM; persisted as JSON after every change."""

    vm_id: int
    name: str
    instance_id: str
    pool: str
    labels: list[str]
    vcpus: int
    memory_mib: int
    state_dir: str
    lease: dict[str, Any]
    rootfs: str
    socket: str
    started_at: float
    jail_root: str | None = None
    cgroup: str | None = None
    uid: int | None = None
    gid: int | None = None
    supervisor_pid: int | None = None
    supervisor_ticks: int | None = None
    phase: str = "starting"  # starting -> running -> (stopping) ; failed
    instance_started_at: float | None = None  # InstanceStart answered (boot_timeout runs)
    mmds_wiped: bool = False
    stop_requested_at: float | None = None
    kill_sent_at: float | None = None
    keep_until: float | None = None  # the job failed: kept for debugging until then
    detail: str | None = None
    start_path: str | None = None  # "restored from template X" or "cold boot: why"
    public_mmds: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def net(self) -> naming.NetLease:
        """The network lease as an object."""
        return naming.NetLease(**self.lease)

    @property
    def dir(self) -> Path:
        """The VM's state directory."""
        return Path(self.state_dir)

    def save(self) -> None:
        """Write the record atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        supervisor.write_json_atomic(self.dir / RECORD, dataclasses.asdict(self))

    @classmethod
    def load(cls, state_dir: Path) -> VmRecord | None:
        """Read the record of ``state_dir``; None when absent or unreadable."""
        try:
            data = json.loads((state_dir / RECORD).read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (OSError, ValueError, TypeError):
            return None


def read_events(state_dir: Path) -> dict[str, dict[str, Any]]:
    """The supervisor's marker events, by event name."""
    events: dict[str, dict[str, Any]] = {}
    try:
        lines = (state_dir / supervisor.EVENTS).read_text().splitlines()
    except OSError:
        return events
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line being written
        events.setdefault(record["event"], record)
    return events


def read_exit(state_dir: Path) -> dict[str, Any] | None:
    """The supervisor's exit record, or None while Firecracker runs (or if it was killed)."""
    try:
        data = json.loads((state_dir / supervisor.EXIT).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_child_pid(state_dir: Path) -> int | None:
    """Firecracker's (or the jailer's) pid as written by the supervisor."""
    try:
        return int((state_dir / supervisor.CHILD_PID).read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, max_bytes: int) -> str:
    """The last ``max_bytes`` of a file as text ("" when absent)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
