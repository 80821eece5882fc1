"""Release of one VM's resources, and the sweep that finds resources no live VM owns.

Release is ordered and idempotent: processes (SIGKILL of the group if still alive), the nft
element, the tap/veth and namespace, the jail directory and cgroup, the disk, then the state
directory with its socket, console and record; the record goes last so a crash half-way leaves
something for the next release or sweep to finish. The sweep removes (a) recorded VMs that are
not live, (b) our processes, interfaces, namespaces and jails that no remaining record names.
"""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from blacksmith_mini.vm.firecracker import disks, jailer, proc, state

if TYPE_CHECKING:
    from blacksmith_mini.vm.firecracker.driver import FirecrackerDriver

SUPERVISOR_MODULE = "blacksmith_mini.vm.firecracker.supervisor"
_INSTANCE = re.compile(r"bm\d+x[A-Za-z0-9]*")


class ReleaseError(Exception):
    """Some resource could not be freed; the record is kept so a later release retries."""


async def release(drv: FirecrackerDriver, vm_id: int) -> None:
    """Free every resource of ``vm_id`` (no-op when unknown)."""
    record = drv.records.get(vm_id)
    if record is None:
        return
    errors: list[str] = []
    if record.supervisor_pid is not None and drv.vm_alive(record):
        proc.kill_group(record.supervisor_pid, signal.SIGKILL)
        await drv.await_death(record, timeout=5.0)
    child = drv._children.pop(vm_id, None)
    if child is not None:
        try:
            child.wait(timeout=5)
        except Exception as exc:  # pragma: no cover - a D-state process
            errors.append(f"supervisor {child.pid} did not die: {exc}")
    try:
        await drv.net.remove_vm(record.net)
    except Exception as exc:
        errors.append(f"network: {exc}")
    if record.jail_root:
        jailer.cleanup(
            instance_dir=Path(record.jail_root).parent,
            cgroup=Path(record.cgroup) if record.cgroup else None,
        )
    disks.remove(Path(record.rootfs))
    if errors:
        record.detail = "; ".join(errors)
        record.save()
        raise ReleaseError(f"vm {record.name}: " + "; ".join(errors))
    shutil.rmtree(record.dir, ignore_errors=True)
    drv.records.pop(vm_id, None)
    drv._last.pop(vm_id, None)


async def sweep(drv: FirecrackerDriver, live_vm_ids: Sequence[int]) -> list[str]:
    """Remove everything of ours that belongs to no live VM; describe each removal."""
    removed: list[str] = []
    live = set(live_vm_ids)
    _load_unknown_records(drv)
    for vm_id, record in list(drv.records.items()):
        if vm_id not in live:
            await release(drv, vm_id)
            removed.append(f"vm {record.name} (id {vm_id}): not live, released")
    removed += _sweep_processes(drv)
    removed += await _sweep_network(drv)
    removed += _sweep_jails(drv)
    return removed


def _load_unknown_records(drv: FirecrackerDriver) -> None:
    if not drv.vms_dir.is_dir():
        return
    for entry in drv.vms_dir.iterdir():
        record = state.VmRecord.load(entry)
        if record is not None and record.vm_id not in drv.records:
            drv.records[record.vm_id] = record


def _owned_ids(drv: FirecrackerDriver) -> set[str]:
    return {r.instance_id for r in drv.records.values()}


def _sweep_processes(drv: FirecrackerDriver) -> list[str]:
    removed: list[str] = []
    known = {r.supervisor_pid for r in drv.records.values()}
    vms_dir = str(drv.vms_dir) + "/"
    for pid, args in proc.find_by_cmdline(SUPERVISOR_MODULE, vms_dir):
        if pid not in known and proc.kill_group(pid):
            removed.append(f"process group {pid} ({' '.join(args[-6:])[:120]})")
    owned = _owned_ids(drv)
    for pid, args in proc.find_by_cmdline("--api-sock", "--id"):
        iid = _arg(args, "--id")
        if iid in owned or not _INSTANCE.fullmatch(iid) or not _ours(drv, pid, args):
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


def _ours(drv: FirecrackerDriver, pid: int, args: list[str]) -> bool:
    """A Firecracker of this driver: its socket is under our vms dir, or its root in our jails."""
    if _arg(args, "--api-sock").startswith(str(drv.vms_dir) + "/"):
        return True
    if drv.settings.jailer_bin is None:
        return False
    try:
        root = Path(f"/proc/{pid}/root").readlink()
    except OSError:
        return False
    return str(root).startswith(str(drv.settings.jailer.chroot_base_dir) + "/")


async def _sweep_network(drv: FirecrackerDriver) -> list[str]:
    removed: list[str] = []
    taps = {r.net.tap for r in drv.records.values()}
    namespaces = {r.net.netns for r in drv.records.values() if r.net.netns}
    for ifname in await drv.net.list_interfaces():
        if ifname not in taps:
            await drv.net.remove_interface(ifname)
            removed.append(f"interface {ifname}")
    for name in await drv.net.list_namespaces():
        if name not in namespaces:
            await drv.net.remove_namespace(name)
            removed.append(f"network namespace {name}")
    await drv.net.prepare([r.net for r in drv.records.values()])  # drops stale nft elements
    return removed


def _sweep_jails(drv: FirecrackerDriver) -> list[str]:
    if drv.settings.jailer_bin is None:
        return []
    removed: list[str] = []
    owned = _owned_ids(drv)
    base = drv.settings.jailer.chroot_base_dir / drv.settings.firecracker_bin.name
    cgroups = jailer.CGROUP_ROOT / drv.settings.jailer.parent_cgroup
    candidates = {p.name for p in base.iterdir()} if base.is_dir() else set()
    candidates |= {p.name for p in cgroups.iterdir() if p.is_dir()} if cgroups.is_dir() else set()
    for iid in sorted(candidates):
        if _INSTANCE.fullmatch(iid) and iid not in owned:
            removed += jailer.cleanup(instance_dir=base / iid, cgroup=cgroups / iid)
    return removed
