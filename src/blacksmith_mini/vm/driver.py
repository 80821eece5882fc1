"""The VM driver port: what the control loop needs from anything that runs runner VMs.

Two drivers implement it: ``local`` (the runner as a host process, the embedded default) and
``firecracker`` (one microVM per job). A future remote host agent implements the same Protocol
over the network, which is why every method is async, keyed by the persisted ``vm_id``, and
idempotent: the control loop may call ``start`` or ``stop`` again after a crash or a retry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol


@dataclasses.dataclass(frozen=True, kw_only=True)
class VmSpec:
    """Everything a driver needs to start one VM. ``jit_config`` is a credential: never log it."""

    vm_id: int
    name: str  # the runner name, unique, made of [A-Za-z0-9_-]; also the driver's resource key
    pool: str
    labels: tuple[str, ...]
    vcpus: int
    memory_mib: int
    jit_config: str = dataclasses.field(repr=False)
    ssh_public_key: str | None = None
    host: str | None = None  # the host placement chose (the remote driver sends it there)
    # The co-located cache: url ('{host_ip}' for the VM's gateway), token (a credential for
    # this VM's cache calls only), fallback_url. None: no cache (the guest uses GitHub's).
    cache: Mapping[str, str] | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VmObservation:
    """What a driver can see of one VM right now.

    ``runner_online``, ``job_started`` and ``job_finished`` come from the guest: the runner's own
    console lines ("Listening for Jobs", "Running job: ...", "Job ... completed with result: ...")
    or an equivalent guest-agent report. ``alive`` is False once the VM (process) has exited;
    ``exit_code``/``exit_signal`` say how, when known.
    """

    vm_id: int
    name: str
    alive: bool
    started_at: float  # epoch seconds
    pid: int | None = None
    ip: str | None = None
    runner_online: bool = False
    job_started: bool = False
    job_finished: bool = False
    exit_code: int | None = None
    exit_signal: int | None = None
    ended_at: float | None = None
    detail: str | None = None  # a short human-readable note (e.g. why the start failed)
    # The job failed and the VM is kept (for ``blacksmith-mini ssh``) until this epoch time;
    # the control loop must not force-stop it before then.
    kept_until: float | None = None
    # The VM's host was lost (its lease lapsed): the VM is written off, not merely exited.
    host_lost: bool = False


class VmStartError(Exception):
    """A VM could not be started. The message names the problem and the fix."""


class VmDriver(Protocol):
    """Port implemented by every VM driver."""

    name: str

    async def open(self) -> None:
        """Prepare the driver (directories, adoption of VMs left by an earlier process)."""

    async def preflight(self, spec: VmSpec) -> None:
        """Check, before any runner is registered, that ``spec`` can be started here (images
        present, disk space, sizes within the hypervisor's limits, network ready). Raises
        ``VmStartError`` naming the problem and the fix. Cheap; no side effects."""

    async def start(self, spec: VmSpec) -> VmObservation:
        """Start the VM for ``spec``. Calling it again for a started ``vm_id`` returns its state."""

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        """Ask the VM to stop (graceful), or kill it (force). Unknown or stopped ids are a no-op."""

    async def observe(self) -> Mapping[int, VmObservation]:
        """Every VM the driver still holds resources for, alive or exited, keyed by vm_id."""

    async def release(self, vm_id: int) -> None:
        """Free every resource of an exited VM (scratch dir, disk, tap, ...). Idempotent."""

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        """Remove resources that belong to no live VM; return one description per orphan removed."""

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        """The last ``max_bytes`` of the VM's console output ("" when unknown)."""

    def on_change(self, callback: Callable[[], None]) -> None:
        """Register a callback run (from the event loop) whenever a VM's observation changes."""

    async def close(self) -> None:
        """Stop watching. VMs are not stopped here: the control loop decides that."""
