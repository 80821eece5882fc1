"""Jailer mode: the argument list, the chroot layout, and its clean-up.

The jailer (same version as Firecracker) is run *without* ``--daemonize`` and ``--new-pid-ns``,
so it execs Firecracker in place: the supervisor's child pid is Firecracker's, and the process
group kill reaches it. Each VM slot gets its own uid/gid (``uid_base + slot``), a cgroup v2 leaf
``<parent_cgroup>/<id>`` with ``cpu.max`` and ``memory.max``, ``RLIMIT_NOFILE``/``FSIZE`` limits,
and (optionally) its own network namespace. Files Firecracker opens must be inside the chroot:
the kernel is hard-linked (copied across filesystems), the per-VM rootfs is created there, and
the log and metrics files are pre-created for the jail uid. Paths given to the API are then
relative to the chroot (``/vmlinux``, ``/rootfs.ext4``, ...).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

CGROUP_ROOT = Path("/sys/fs/cgroup")
SOCKET_IN_JAIL = "/run/firecracker.socket"
KERNEL_IN_JAIL = "/vmlinux"
ROOTFS_IN_JAIL = "/rootfs.ext4"
LOG_IN_JAIL = "/firecracker.log"
METRICS_IN_JAIL = "/metrics.json"


@dataclasses.dataclass(frozen=True, kw_only=True)
class JailPlan:
    """Everything about one VM's jail."""

    instance_id: str
    root: Path  # <chroot_base>/<exec name>/<id>/root
    uid: int
    gid: int
    cgroup: Path
    argv: tuple[str, ...]

    @property
    def instance_dir(self) -> Path:
        """``<chroot_base>/<exec name>/<id>``: removed on release."""
        return self.root.parent

    def host_path(self, in_jail: str) -> Path:
        """Where a chroot path lives on the host."""
        return self.root / in_jail.lstrip("/")


def plan(
    settings: FirecrackerSettings,
    *,
    instance_id: str,
    slot: int,
    vcpus: int,
    memory_mib: int,
    netns_path: Path | None,
) -> JailPlan:
    """One VM's jail and the jailer's argv (everything after ``--`` goes to Firecracker)."""
    if settings.jailer_bin is None:
        raise ValueError("jailer_bin is not set")
    j = settings.jailer
    uid, gid = j.uid_base + slot, j.gid_base + slot
    root = j.chroot_base_dir / settings.firecracker_bin.name / instance_id / "root"
    quota = 100_000 * vcpus * j.cpu_quota_percent_per_vcpu // 100
    memory_max = (memory_mib + j.memory_overhead_mib) * 1024 * 1024
    argv = [
        str(settings.jailer_bin),
        "--id",
        instance_id,
        "--exec-file",
        str(settings.firecracker_bin),
        "--uid",
        str(uid),
        "--gid",
        str(gid),
        "--chroot-base-dir",
        str(j.chroot_base_dir),
        "--cgroup-version",
        "2",
        "--parent-cgroup",
        j.parent_cgroup,
        "--cgroup",
        f"cpu.max={quota} 100000",
        "--cgroup",
        f"memory.max={memory_max}",
        "--resource-limit",
        f"no-file={j.no_file_limit}",
    ]
    if j.fsize_limit_mib is not None:
        argv += ["--resource-limit", f"fsize={j.fsize_limit_mib * 1024 * 1024}"]
    if netns_path is not None:
        argv += ["--netns", str(netns_path)]
    argv += ["--", "--api-sock", SOCKET_IN_JAIL]
    return JailPlan(
        instance_id=instance_id,
        root=root,
        uid=uid,
        gid=gid,
        cgroup=CGROUP_ROOT / j.parent_cgroup / instance_id,
        argv=tuple(argv),
    )


def prepare(jail: JailPlan, *, kernel: Path) -> None:
    """Create the chroot with the kernel and empty, jail-owned log and metrics files."""
    jail.host_path("/run").mkdir(parents=True, exist_ok=True)
    link_or_copy(src=kernel, dst=jail.host_path(KERNEL_IN_JAIL))
    for name in (LOG_IN_JAIL, METRICS_IN_JAIL):
        path = jail.host_path(name)
        path.touch()
        os.chown(path, jail.uid, jail.gid)
    os.chown(jail.host_path("/run"), jail.uid, jail.gid)


def own(jail: JailPlan, path: Path) -> None:
    """Give a file inside the jail (the VM's rootfs) to the jail user."""
    os.chown(path, jail.uid, jail.gid)


def link_or_copy(*, src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst``; copy when they are on different filesystems."""
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def cleanup(*, instance_dir: Path, cgroup: Path | None) -> list[str]:
    """Remove a jail directory and its cgroup leaf; return what was removed."""
    removed: list[str] = []
    if instance_dir.exists():
        shutil.rmtree(instance_dir, ignore_errors=True)
        removed.append(f"jail {instance_dir}")
    if cgroup is not None and cgroup.is_dir():
        try:
            cgroup.rmdir()
            removed.append(f"cgroup {cgroup}")
        except OSError:
            pass  # still has processes: the sweep retries later
    return removed
