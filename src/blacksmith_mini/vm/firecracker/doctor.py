"""``blacksmith-mini doctor`` checks for the Firecracker driver: can this host run microVMs?

Each check returns a :class:`DoctorCheck` with what was found and, when it fails, the fix. No
check changes the host except the tap probe, which creates and deletes one tap.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from blacksmith_mini.vm.firecracker import network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

EXPECTED_MAJOR_MINOR = "1.16"


@dataclasses.dataclass(frozen=True, kw_only=True)
class DoctorCheck:
    """One finding."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def run_checks(settings: FirecrackerSettings, *, data_dir: Path | None = None) -> list[DoctorCheck]:
    """Every check, in a stable order (``data_dir``: where non-jailed VM disks go)."""
    checks = [
        check_kvm(),
        check_binary("firecracker", settings.firecracker_bin),
    ]
    if settings.jailer_bin is not None:
        checks.append(check_binary("jailer", settings.jailer_bin))
        checks.append(check_cgroup_v2(settings.jailer.parent_cgroup))
    checks += [
        check_file("kernel", settings.kernel_path, what="guest kernel (ELF vmlinux)"),
        check_file("rootfs", settings.rootfs_path, what="base root filesystem"),
        check_tap(settings.tap_prefix),
        check_nftables(),
        check_ip_forward(),
        check_free_disk(settings, data_dir=data_dir),
    ]
    return checks


def check_kvm(path: Path = Path("/dev/kvm")) -> DoctorCheck:
    """/dev/kvm exists and is readable and writable by us."""
    if not path.exists():
        return DoctorCheck(
            name="kvm",
            ok=False,
            detail=f"{path} does not exist",
            fix="run on bare metal or a VM with nested virtualization; load kvm_intel/kvm_amd",
        )
    if not os.access(path, os.R_OK | os.W_OK):
        return DoctorCheck(
            name="kvm",
            ok=False,
            detail=f"{path} is not read/writable by uid {os.getuid()}",
            fix=f"run as root or add the user to the group owning {path} (usually `kvm`)",
        )
    return DoctorCheck(name="kvm", ok=True, detail=f"{path} is accessible")


def check_binary(name: str, path: Path) -> DoctorCheck:
    """The binary runs and reports a version of the supported line."""
    fix = (
        f"install the static {name} v{EXPECTED_MAJOR_MINOR}.x release binary at {path} "
        f"(or set [vm.firecracker] {name}_bin)"
    )
    if not os.access(path, os.X_OK):
        return DoctorCheck(name=name, ok=False, detail=f"{path} missing or not executable", fix=fix)
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return DoctorCheck(name=name, ok=False, detail=f"{path} --version failed: {exc}", fix=fix)
    match = re.search(r"v?(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    if match is None:
        return DoctorCheck(name=name, ok=False, detail=f"no version from {path}", fix=fix)
    version = match.group(1)
    ok = version.startswith(EXPECTED_MAJOR_MINOR + ".")
    return DoctorCheck(
        name=name,
        ok=ok,
        detail=f"{path} is v{version}",
        fix=None if ok else fix,
    )


def check_file(name: str, path: Path, *, what: str) -> DoctorCheck:
    """An image file exists."""
    if path.is_file():
        size = path.stat().st_size
        return DoctorCheck(name=name, ok=True, detail=f"{what} {path} ({size // 2**20} MiB)")
    return DoctorCheck(
        name=name,
        ok=False,
        detail=f"{what} {path} not found",
        fix=f"run `blacksmith-mini image build` or set [vm.firecracker] {name}_path",
    )


def check_tap(prefix: str) -> DoctorCheck:
    """We can create (and delete) a tap device."""
    if not network.can_create_tap():
        return DoctorCheck(
            name="tap",
            ok=False,
            detail="/dev/net/tun is missing or not accessible",
            fix="run as root (or with CAP_NET_ADMIN) and `modprobe tun`",
        )
    probe = f"{prefix[:8]}t{uuid.uuid4().hex[:5]}"
    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.link("add", ifname=probe, kind="tuntap", mode="tap")
            for index in ipr.link_lookup(ifname=probe):
                ipr.link("del", index=index)
    except Exception as exc:
        return DoctorCheck(
            name="tap",
            ok=False,
            detail=f"creating tap {probe} failed: {exc}",
            fix="run as root (or with CAP_NET_ADMIN)",
        )
    return DoctorCheck(name="tap", ok=True, detail="tap devices can be created")


def check_nftables() -> DoctorCheck:
    """``nft`` is installed and can list the ruleset."""
    nft = shutil.which("nft")
    if nft is None:
        return DoctorCheck(
            name="nftables",
            ok=False,
            detail="nft not found",
            fix="apt-get install nftables",
        )
    out = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return DoctorCheck(
            name="nftables",
            ok=False,
            detail=f"nft list tables: {out.stderr.strip()[:200]}",
            fix="run as root; the kernel needs nf_tables (CONFIG_NF_TABLES)",
        )
    return DoctorCheck(name="nftables", ok=True, detail=f"{nft} works")


def check_ip_forward() -> DoctorCheck:
    """IPv4 forwarding (the driver turns it on, so this is informational)."""
    on = network.ip_forward_enabled()
    return DoctorCheck(
        name="ip_forward",
        ok=True,
        detail="net.ipv4.ip_forward=1" if on else "off now; the driver enables it on start-up",
    )


def check_cgroup_v2(parent: str, root: Path = Path("/sys/fs/cgroup")) -> DoctorCheck:
    """cgroup v2 is mounted with the cpu and memory controllers available (jailer mode)."""
    controllers = root / "cgroup.controllers"
    if not controllers.exists():
        return DoctorCheck(
            name="cgroup_v2",
            ok=False,
            detail=f"{root} is not a cgroup v2 (unified) mount",
            fix="boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 only)",
        )
    available = set(controllers.read_text().split())
    missing = {"cpu", "memory"} - available
    if missing:
        return DoctorCheck(
            name="cgroup_v2",
            ok=False,
            detail=f"controllers missing: {sorted(missing)}",
            fix="enable them: echo '+cpu +memory' > /sys/fs/cgroup/cgroup.subtree_control",
        )
    return DoctorCheck(
        name="cgroup_v2", ok=True, detail=f"cgroup v2 with cpu+memory (VMs under {root / parent})"
    )


def check_free_disk(settings: FirecrackerSettings, *, data_dir: Path | None = None) -> DoctorCheck:
    """Free space where VM disks go, against ``min_free_disk_mib``."""
    if settings.jailer_bin:
        where = settings.jailer.chroot_base_dir
    else:
        where = data_dir or settings.rootfs_path.parent
    probe = where
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free_mib = shutil.disk_usage(probe).free // 2**20
    ok = free_mib >= settings.min_free_disk_mib
    return DoctorCheck(
        name="disk",
        ok=ok,
        detail=f"{free_mib} MiB free at {probe}",
        fix=None if ok else "free disk space or lower [vm.firecracker] min_free_disk_mib",
    )
