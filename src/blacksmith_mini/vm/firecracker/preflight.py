"""Preflight of the Firecracker driver: can this VM start here? Checked before anything changes.

The control loop runs it (``FirecrackerDriver.preflight``) before registering a runner at GitHub,
and ``start`` runs it again. Each failure is a ``VmStartError`` whose text names the problem and
the fix: the binaries are executable, the kernel and rootfs exist, the disk has room for one more
VM disk, the VM's size is within Firecracker v1.16.1's limits (``vcpu_count`` 1 to 32, 1 or even
with SMT; at least 128 MiB and no more than the host has), and the host network is ready
(``network.Checkable``). Cheap: a few ``stat`` calls, ``/proc/meminfo`` and the network's check.
"""

from __future__ import annotations

import os
from pathlib import Path

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import disks, network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

MAX_VCPUS = 32  # Firecracker v1.16.1, vmm_config/machine_config.rs
MIN_MEMORY_MIB = 128
SMT = False  # the driver always sends "smt": false (api.put_machine_config)


def vcpu_problem(vcpus: int, *, smt: bool = SMT) -> str | None:
    """Why Firecracker would refuse ``vcpus``, or None."""
    if not 1 <= vcpus <= MAX_VCPUS:
        return (
            f"vcpus {vcpus} is outside Firecracker's limits (vcpu_count must be 1 to "
            f"{MAX_VCPUS}); fix: set the pool's vcpus between 1 and {MAX_VCPUS}"
        )
    if smt and vcpus > 1 and vcpus % 2:
        return (
            f"vcpus {vcpus} with SMT on: Firecracker accepts only 1 or an even number of vCPUs; "
            "fix: use an even vcpus for the pool"
        )
    return None


def host_memory_mib() -> int | None:
    """The host's total memory in MiB (``/proc/meminfo``), or None when unreadable."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def memory_problem(memory_mib: int, *, overhead_mib: int, host_mib: int | None) -> str | None:
    """Why ``memory_mib`` cannot be given to a guest here, or None."""
    if memory_mib < MIN_MEMORY_MIB:
        return (
            f"memory_mib {memory_mib} is below {MIN_MEMORY_MIB} MiB, the least a guest with the "
            f"runner boots in; fix: set the pool's memory_mib to at least {MIN_MEMORY_MIB}"
        )
    if host_mib is not None and memory_mib + overhead_mib > host_mib:
        return (
            f"memory_mib {memory_mib} (+{overhead_mib} MiB VMM overhead) is more memory than the "
            f"host has ({host_mib} MiB); fix: lower the pool's memory_mib"
        )
    return None


def check_spec(settings: FirecrackerSettings, spec: driver.VmSpec) -> None:
    """The VM's size is within Firecracker's and the host's limits."""
    overhead = settings.jailer.memory_overhead_mib if settings.jailer_bin else 0
    for problem in (
        vcpu_problem(spec.vcpus),
        memory_problem(spec.memory_mib, overhead_mib=overhead, host_mib=host_memory_mib()),
    ):
        if problem is not None:
            raise driver.VmStartError(f"{spec.name}: {problem}")


def check_files(settings: FirecrackerSettings) -> None:
    """Binaries executable, kernel and rootfs present."""
    s = settings
    for label, path in (("firecracker_bin", s.firecracker_bin), ("jailer_bin", s.jailer_bin)):
        if path is not None and not (path.is_file() and os.access(path, os.X_OK)):
            raise driver.VmStartError(
                f"{label} {path} is missing or not executable; fix: install the Firecracker "
                f"v1.16.x release binaries there or set [vm.firecracker] {label} (see "
                "`blacksmith-mini doctor`)"
            )
    for label, path in (("kernel_path", s.kernel_path), ("rootfs_path", s.rootfs_path)):
        if not path.is_file():
            raise driver.VmStartError(
                f"{label} {path} not found; fix: build it with `blacksmith-mini image build` or "
                f"set [vm.firecracker] {label}"
            )


def check_disk(settings: FirecrackerSettings, *, vms_dir: Path) -> None:
    """Room for one more VM disk where VM disks go, keeping ``min_free_disk_mib``."""
    s = settings
    target = s.jailer.chroot_base_dir if s.jailer_bin else vms_dir
    try:
        disks.check_free_space(
            directory=target,
            needed_bytes=disks.strategy(s.rootfs_strategy).space_needed(s.rootfs_path),
            min_free_mib=s.min_free_disk_mib,
        )
    except (disks.DiskError, OSError) as exc:
        raise driver.VmStartError(str(exc)) from exc


async def check_network(net: network.Network) -> None:
    """The host network's own readiness check, where it has one."""
    if not isinstance(net, network.Checkable):
        return
    try:
        await net.check()
    except network.NetworkError as exc:
        text = str(exc)
        if "fix:" not in text:
            text += "; fix: run `blacksmith-mini doctor` and restart blacksmith-mini"
        raise driver.VmStartError(f"the host network is not ready: {text}") from exc


async def check(
    settings: FirecrackerSettings, spec: driver.VmSpec, *, vms_dir: Path, net: network.Network
) -> None:
    """Every check above, cheapest first; raises the first ``VmStartError``."""
    check_spec(settings, spec)
    check_files(settings)
    check_disk(settings, vms_dir=vms_dir)
    await check_network(net)
