"""``blacksmith-mini image build``: the guest kernel and root filesystem for the Firecracker driver.

:func:`plan_build` is pure: it returns the exact steps (argument lists, never a shell) that
:func:`build_image` then runs, as root, on a Debian/Ubuntu machine with internet access and
``debootstrap``, ``e2fsprogs``, ``curl``, ``make``, ``gcc``, ``flex``, ``bison``, ``bc``,
``libelf-dev`` and ``libssl-dev`` installed. Results in ``output_dir``: ``vmlinux`` (ELF, built
from kernel.org sources with Firecracker's microvm config plus ``images/kernel/
blacksmith-guest.config``) and ``rootfs.ext4`` (Ubuntu via debootstrap, Docker, the GitHub
Actions runner in ``/opt/runner``, user ``runner`` (uid 1001, groups docker/sudo), the guest
agent and its systemd unit). Point ``kernel_path``/``rootfs_path`` at them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

REPO_IMAGES = Path(__file__).resolve().parents[4] / "images"
FC_CONFIG_URL = (
    "https://raw.githubusercontent.com/firecracker-microvm/firecracker/v1.16.1/"
    "resources/guest_configs/microvm-kernel-ci-x86_64-6.1.config"
)
GUEST_PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "iproute2",
    "iptables",
    "ca-certificates",
    "curl",
    "git",
    "sudo",
    "openssh-server",
    "python3",
    "docker.io",
    "jq",
    "unzip",
    "zstd",
    "haveged",
    "tar",
    "gzip",
    "locales",
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Step:
    """One command of the build, with what it is for."""

    what: str
    argv: tuple[str, ...]
    cwd: Path | None = None
    stdin_text: str | None = None


def runner_url(version: str, arch: str = "x64") -> str:
    """Download URL of the GitHub Actions runner tarball."""
    return (
        f"https://github.com/actions/runner/releases/download/v{version}/"
        f"actions-runner-linux-{arch}-{version}.tar.gz"
    )


def plan_build(
    *,
    output_dir: Path,
    runner_version: str,
    kernel_version: str = "6.1.141",
    ubuntu_suite: str = "noble",
    mirror: str = "http://archive.ubuntu.com/ubuntu",
    rootfs_size_gib: int = 10,
    jobs: int | None = None,
    images_dir: Path = REPO_IMAGES,
) -> list[Step]:
    """Every step of the build, in order."""
    work = output_dir / "build"
    return [
        *_kernel_steps(
            work=work,
            output_dir=output_dir,
            version=kernel_version,
            jobs=jobs or os.cpu_count() or 2,
            images_dir=images_dir,
        ),
        *_rootfs_steps(
            work=work,
            output_dir=output_dir,
            runner_version=runner_version,
            suite=ubuntu_suite,
            mirror=mirror,
            size_gib=rootfs_size_gib,
            images_dir=images_dir,
        ),
    ]


def _kernel_steps(
    *, work: Path, output_dir: Path, version: str, jobs: int, images_dir: Path
) -> list[Step]:
    major = version.split(".")[0]
    tarball = work / f"linux-{version}.tar.xz"
    src = work / f"linux-{version}"
    url = f"https://cdn.kernel.org/pub/linux/kernel/v{major}.x/linux-{version}.tar.xz"
    return [
        Step(what="work directory", argv=("mkdir", "-p", str(work))),
        Step(what="kernel sources", argv=("curl", "-fsSL", "-o", str(tarball), url)),
        Step(what="unpack kernel", argv=("tar", "-xf", str(tarball), "-C", str(work))),
        Step(
            what="Firecracker microvm config",
            argv=("curl", "-fsSL", "-o", str(src / ".config"), FC_CONFIG_URL),
        ),
        Step(
            what="merge our config fragment",
            cwd=src,
            argv=(
                "scripts/kconfig/merge_config.sh",
                "-m",
                ".config",
                str(images_dir / "kernel" / "blacksmith-guest.config"),
            ),
        ),
        Step(what="resolve config", cwd=src, argv=("make", "olddefconfig")),
        Step(what="build vmlinux", cwd=src, argv=("make", f"-j{jobs}", "vmlinux")),
        Step(
            what="install vmlinux", argv=("cp", str(src / "vmlinux"), str(output_dir / "vmlinux"))
        ),
    ]


def _in_chroot(mnt: Path, *argv: str) -> tuple[str, ...]:
    return ("chroot", str(mnt), "/usr/bin/env", "DEBIAN_FRONTEND=noninteractive", *argv)


def _rootfs_steps(
    *,
    work: Path,
    output_dir: Path,
    runner_version: str,
    suite: str,
    mirror: str,
    size_gib: int,
    images_dir: Path,
) -> list[Step]:
    image = output_dir / "rootfs.ext4"
    mnt = work / "rootfs"
    runner_tar = work / f"actions-runner-{runner_version}.tar.gz"
    agent = images_dir / "guest" / "blacksmith-agent.py"
    unit = images_dir / "guest" / "blacksmith-agent.service"
    fstab = "/dev/vda / ext4 defaults,noatime 0 1\n"
    sudoers = "runner ALL=(ALL) NOPASSWD:ALL\n"
    return [
        Step(what="sparse image file", argv=("truncate", "-s", f"{size_gib}G", str(image))),
        Step(what="ext4 filesystem", argv=("mkfs.ext4", "-F", "-L", "rootfs", str(image))),
        Step(what="mount point", argv=("mkdir", "-p", str(mnt))),
        Step(what="mount image", argv=("mount", "-o", "loop", str(image), str(mnt))),
        Step(
            what="debootstrap Ubuntu",
            argv=(
                "debootstrap",
                "--variant=minbase",
                "--components=main,universe",
                suite,
                str(mnt),
                mirror,
            ),
        ),
        Step(what="mount /proc", argv=("mount", "-t", "proc", "proc", str(mnt / "proc"))),
        Step(what="apt update", argv=_in_chroot(mnt, "apt-get", "update")),
        Step(
            what="guest packages",
            argv=_in_chroot(
                mnt, "apt-get", "install", "-y", "--no-install-recommends", *GUEST_PACKAGES
            ),
        ),
        Step(
            what="iptables-legacy for Docker",
            argv=_in_chroot(
                mnt, "update-alternatives", "--set", "iptables", "/usr/sbin/iptables-legacy"
            ),
        ),
        Step(what="docker group gid 121", argv=_in_chroot(mnt, "groupmod", "-g", "121", "docker")),
        Step(
            what="runner user",
            argv=_in_chroot(
                mnt, "useradd", "-m", "-u", "1001", "-G", "docker,sudo", "-s", "/bin/bash", "runner"
            ),
        ),
        Step(
            what="passwordless sudo",
            argv=("tee", str(mnt / "etc/sudoers.d/runner")),
            stdin_text=sudoers,
        ),
        Step(what="fstab", argv=("tee", str(mnt / "etc/fstab")), stdin_text=fstab),
        Step(what="blank machine-id", argv=("truncate", "-s", "0", str(mnt / "etc/machine-id"))),
        Step(
            what="runner tarball",
            argv=("curl", "-fsSL", "-o", str(runner_tar), runner_url(runner_version)),
        ),
        Step(what="runner dir", argv=("mkdir", "-p", str(mnt / "opt/runner"))),
        Step(
            what="unpack runner",
            argv=("tar", "-xzf", str(runner_tar), "-C", str(mnt / "opt/runner")),
        ),
        Step(
            what="runner dependencies",
            argv=_in_chroot(mnt, "/opt/runner/bin/installdependencies.sh"),
        ),
        Step(
            what="runner owns /opt/runner",
            argv=_in_chroot(mnt, "chown", "-R", "runner:runner", "/opt/runner"),
        ),
        Step(
            what="guest agent",
            argv=("install", "-m", "0755", str(agent), str(mnt / "usr/local/bin/blacksmith-agent")),
        ),
        Step(
            what="agent unit",
            argv=(
                "install",
                "-m",
                "0644",
                str(unit),
                str(mnt / "etc/systemd/system/blacksmith-agent.service"),
            ),
        ),
        Step(what="enable agent", argv=_in_chroot(mnt, "systemctl", "enable", "blacksmith-agent")),
        Step(what="enable docker", argv=_in_chroot(mnt, "systemctl", "enable", "docker")),
        Step(
            what="no getty on the serial console",
            argv=_in_chroot(mnt, "systemctl", "mask", "serial-getty@ttyS0.service"),
        ),
        Step(what="clean apt", argv=_in_chroot(mnt, "apt-get", "clean")),
        Step(what="unmount /proc", argv=("umount", str(mnt / "proc"))),
        Step(what="unmount image", argv=("umount", str(mnt))),
        Step(what="check filesystem", argv=("e2fsck", "-fy", str(image))),
    ]


def build_image(
    *,
    output_dir: Path,
    runner_version: str,
    kernel_version: str = "6.1.141",
    ubuntu_suite: str = "noble",
    rootfs_size_gib: int = 10,
) -> tuple[Path, Path]:
    """Build ``vmlinux`` and ``rootfs.ext4`` in ``output_dir``; return their paths.

    Needs root, internet access and the tools listed in the module docstring.
    """
    if os.geteuid() != 0:
        raise PermissionError("image build needs root (loop mounts and chroot)")
    output_dir.mkdir(parents=True, exist_ok=True)
    steps = plan_build(
        output_dir=output_dir,
        runner_version=runner_version,
        kernel_version=kernel_version,
        ubuntu_suite=ubuntu_suite,
        rootfs_size_gib=rootfs_size_gib,
    )
    try:
        for step in steps:
            subprocess.run(
                step.argv,
                cwd=step.cwd,
                check=True,
                text=True,
                input=step.stdin_text,
                stdout=subprocess.DEVNULL if step.stdin_text is not None else None,
            )
    except BaseException:
        mnt = output_dir / "build" / "rootfs"  # leave no mount behind on failure
        for target in (mnt / "proc", mnt):
            subprocess.run(["umount", str(target)], check=False, capture_output=True)
        raise
    return output_dir / "vmlinux", output_dir / "rootfs.ext4"
