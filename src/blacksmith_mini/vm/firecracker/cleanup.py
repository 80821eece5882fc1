"""Release of one VM's resources, and the sweep that finds resources no live VM owns.

Release is ordered and idempotent: processes (SIGKILL of the group if still alive), the nft
element, the tap/veth and namespace, the jail directory and cgroup, the disk, then the state
directory with its socket, console and record; the record goes last so a crash half-way leaves
something for the next release or sweep to finish. The sweep removes (a) recorded VMs that are
not live, (b) our processes, interfaces, namespaces and jails that no remaining record names.
Both work on the driver's ``registry.Registry`` (the same one the watcher reads) and its
``network.Network``; file removals (multi-GB disks, jail trees) run in a worker thread.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

import anyio

from blacksmith_mini.vm.firecracker import disks, jailer, naming, network, proc, registry, state
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

SUPERVISOR_MODULE = "blacksmith_mini.vm.firecracker.supervisor"
_INSTANCE = re.compile(r"bm\d+x[A-Za-z0-9]*")


class ReleaseError(Exception):
    """Some resource could not be freed; the record is kept so a later release retries."""


async def release(*, vms: registry.Registry, net: network.Network, vm_id: int) -> None:
    """Free every resource of ``vm_id`` (no-op when unknown)."""
    record = vms.get(vm_id)
    if record is None:
        return
    errors: list[str] = []
    if record.supervisor_pid is not None and vms.alive(record):
        proc.kill_group(record.supervisor_pid, signal.SIGKILL)
        await vms.await_death(record, timeout=5.0)
    child = vms.take_child(vm_id)
    if child is not None:
        try:
            await anyio.to_thread.run_sync(lambda: child.wait(timeout=5))
        except Exception as exc:  # pragma: no cover - a D-state process
            errors.append(f"supervisor {child.pid} did not die: {exc}")
    try:
        await net.remove_vm(record.net)
    except Exception as exc:
        errors.append(f"network: {exc}")
    await anyio.to_thread.run_sync(_remove_files, record)
    if errors:
        record.detail = "; ".join(errors)
        record.save()
        raise ReleaseError(f"vm {record.name}: " + "; ".join(errors))
    await anyio.to_thread.run_sync(lambda: shutil.rmtree(record.dir, ignore_errors=True))
    vms.forget(vm_id)


def _remove_files(record: state.VmRecord) -> None:
    if record.jail_root:
        jailer.cleanup(
            instance_dir=Path(record.jail_root).parent,
            cgroup=Path(record.cgroup) if record.cgroup else None,
        )
    disks.remove(Path(record.rootfs))


async def sweep(
    *,
    vms: registry.Registry,
    net: network.Network,
    settings: FirecrackerSettings,
    live_vm_ids: Sequence[int],
    keep: Sequence[naming.NetLease] = (),
) -> list[str]:
    """Remove everything of ours that belongs to no live VM (nor to ``keep``: the networks of
    template VMs being built and of the spare); describe each removal."""
    removed: list[str] = []
    live = set(live_vm_ids)
    vms.load()
    for record in vms.records():
        if record.vm_id not in live:
            await release(vms=vms, net=net, vm_id=record.vm_id)
            removed.append(f"vm {record.name} (id {record.vm_id}): not live, released")
    owned = _Owned(
        vms_dir=vms.vms_dir,
        supervisor_pids={r.supervisor_pid for r in vms.records()},
        instance_ids={r.instance_id for r in vms.records()},
    )
    removed += await anyio.to_thread.run_sync(_sweep_processes, owned, settings)
    removed += await _sweep_network(vms, net, keep=keep)
    removed += await anyio.to_thread.run_sync(_sweep_jails, owned, settings)
    return removed


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Owned:
    """What the remaining records own, taken on the loop for the worker-thread sweeps."""

    vms_dir: Path
    supervisor_pids: set[int | None]
    instance_ids: set[str]


def _sweep_processes(owned: _Owned, settings: FirecrackerSettings) -> list[str]:
    removed: list[str] = []
    vms_dir = str(owned.vms_dir) + "/"
    for pid, args in proc.find_by_cmdline(SUPERVISOR_MODULE, vms_dir):
        if pid not in owned.supervisor_pids and proc.kill_group(pid):
            removed.append(f"process group {pid} ({' '.join(args[-6:])[:120]})")
    for pid, args in proc.find_by_cmdline("--api-sock", "--id"):
        iid = _arg(args, "--id")
        if iid in owned.instance_ids or not _INSTANCE.fullmatch(iid):
            continue
        if not _ours(owned.vms_dir, settings, pid=pid, args=args):
            continue
        pgid = proc.pgid_of(pid)
        if pgid is not None and proc.kill_group(pgid):
            removed.append(f"firecracker {iid} (pid {pid})")
    return removed


def _arg(args: list[str], flag: str) -> str:
    try:
        return args[args.index(flag) + 1]
    except (ValueError, IndexError):
        return ""


def _ours(vms_dir: Path, settings: FirecrackerSettings, *, pid: int, args: list[str]) -> bool:
    """A Firecracker of this driver: its socket is under our vms dir, or its root in our jails."""
    if _arg(args, "--api-sock").startswith(str(vms_dir) + "/"):
        return True
    if settings.jailer_bin is None:
        return False
    try:
        root = Path(f"/proc/{pid}/root").readlink()
    except OSError:
        return False
    return str(root).startswith(str(settings.jailer.chroot_base_dir) + "/")


async def _sweep_network(
    vms: registry.Registry, net: network.Network, *, keep: Sequence[naming.NetLease]
) -> list[str]:
    removed: list[str] = []
    leases = [r.net for r in vms.records()] + list(keep)
    taps = {lease.tap for lease in leases}
    namespaces = {lease.netns for lease in leases if lease.netns}
    for ifname in await net.list_interfaces():
        if ifname not in taps:
            await net.remove_interface(ifname)
            removed.append(f"interface {ifname}")
    for name in await net.list_namespaces():
        if name not in namespaces:
            await net.remove_namespace(name)
            removed.append(f"network namespace {name}")
    await net.prepare(leases)  # drops stale nft elements
    return removed


def _sweep_jails(owned: _Owned, settings: FirecrackerSettings) -> list[str]:
    if settings.jailer_bin is None:
        return []
    removed: list[str] = []
    base = settings.jailer.chroot_base_dir / settings.firecracker_bin.name
    cgroups = jailer.CGROUP_ROOT / settings.jailer.parent_cgroup
    candidates = {p.name for p in base.iterdir()} if base.is_dir() else set()
    candidates |= {p.name for p in cgroups.iterdir() if p.is_dir()} if cgroups.is_dir() else set()
    for iid in sorted(candidates):
        if _INSTANCE.fullmatch(iid) and iid not in owned.instance_ids:
            removed += jailer.cleanup(instance_dir=base / iid, cgroup=cgroups / iid)
    return removed
