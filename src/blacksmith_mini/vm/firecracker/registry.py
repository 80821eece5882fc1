"""The one registry of the Firecracker driver's VMs, shared by start, the watcher and cleanup.

It holds each VM's persisted ``VmRecord``, the ``Popen`` handle of every supervisor this process
spawned (to reap it), and the last observation published per VM (to notice changes). It also
answers "is this VM still running" (supervisor or Firecracker itself, checked against pid reuse)
and kills a VM's process group. Nothing outside this module touches its dictionaries.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import proc, state


def vm_alive(record: state.VmRecord) -> bool:
    """The supervisor or Firecracker itself still runs (checked against pid reuse)."""
    if proc.is_alive(record.supervisor_pid, record.supervisor_ticks):
        return True
    child = state.read_child_pid(record.dir)
    return (
        child is not None
        and proc.is_alive(child, None)
        and record.instance_id in " ".join(proc.cmdline(child))
    )


class Registry:
    """Records by vm_id, supervisor handles and last observations of one driver."""

    def __init__(self, vms_dir: Path) -> None:
        self.vms_dir = vms_dir
        self._records: dict[int, state.VmRecord] = {}
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._last: dict[int, driver.VmObservation] = {}

    # -- records ----------------------------------------------------------------------------

    def get(self, vm_id: int) -> state.VmRecord | None:
        """The record of ``vm_id``, or None."""
        return self._records.get(vm_id)

    def __contains__(self, vm_id: object) -> bool:
        return vm_id in self._records

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._records))

    def __len__(self) -> int:
        return len(self._records)

    def records(self) -> list[state.VmRecord]:
        """A snapshot of every record (safe to iterate while records come and go)."""
        return list(self._records.values())

    def as_dict(self) -> dict[int, state.VmRecord]:
        """A copy of the records by vm_id."""
        return dict(self._records)

    def add(self, record: state.VmRecord) -> None:
        """Register a new or adopted VM."""
        self._records[record.vm_id] = record

    def load(self) -> list[state.VmRecord]:
        """Adopt every record under ``vms_dir`` not known yet; return those adopted."""
        adopted: list[state.VmRecord] = []
        if not self.vms_dir.is_dir():
            return adopted
        for entry in sorted(self.vms_dir.iterdir()):
            record = state.VmRecord.load(entry)
            if record is not None and record.vm_id not in self._records:
                self._records[record.vm_id] = record
                adopted.append(record)
        return adopted

    def forget(self, vm_id: int) -> None:
        """Drop everything known about ``vm_id`` (its resources are gone)."""
        self._records.pop(vm_id, None)
        self._children.pop(vm_id, None)
        self._last.pop(vm_id, None)

    # -- processes --------------------------------------------------------------------------

    def add_child(self, vm_id: int, child: subprocess.Popen[bytes]) -> None:
        """Keep the handle of a supervisor we spawned, so it is reaped."""
        self._children[vm_id] = child

    def take_child(self, vm_id: int) -> subprocess.Popen[bytes] | None:
        """Remove and return the supervisor handle of ``vm_id``."""
        return self._children.pop(vm_id, None)

    def _reap(self, vm_id: int) -> None:
        child = self._children.get(vm_id)
        if child is not None and child.poll() is not None:
            del self._children[vm_id]

    def alive(self, record: state.VmRecord) -> bool:
        """:func:`vm_alive`, reaping our own exited supervisor first (no zombie counts)."""
        self._reap(record.vm_id)
        return vm_alive(record)

    def kill(self, record: state.VmRecord) -> None:
        """SIGKILL the VM's process group (the supervisor leads it) and record when."""
        if record.supervisor_pid is not None and self.alive(record):
            proc.kill_group(record.supervisor_pid, signal.SIGKILL)
            record.kill_sent_at = time.time()
            record.save()
        self._reap(record.vm_id)

    async def await_death(self, record: state.VmRecord, *, timeout: float) -> None:
        """Wait (without blocking the loop) until the VM is gone or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while self.alive(record) and time.monotonic() < deadline:
            await anyio.sleep(0.02)

    # -- observations -----------------------------------------------------------------------

    def changed(self, vm_id: int, observation: driver.VmObservation) -> bool:
        """Remember ``observation``; True if it differs from the last one of ``vm_id``."""
        if self._last.get(vm_id) == observation:
            return False
        self._last[vm_id] = observation
        return True
