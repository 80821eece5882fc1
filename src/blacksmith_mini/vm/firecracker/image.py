"""``blacksmith-mini image build``: the guest kernel and root filesystem for the Firecracker driver.

:func:`plan_build` is pure: it returns the exact steps (argument lists, never a shell) that
:func:`build_image` then runs, as root, on a Debian/Ubuntu machine with ``debootstrap`` and
``e2fsprogs`` (plus ``curl``, ``make``, ``gcc``, ``flex``, ``bison``, ``bc``, ``libelf-dev`` and
``libssl-dev`` for the kernel). Results in ``output_dir``:

- ``vmlinux`` (ELF, built from kernel.org sources with Firecracker's microvm config plus
  ``images/kernel/blacksmith-guest.config``; or copied from ``kernel``, or skipped);
- ``rootfs.ext4``: debootstrap (``--variant=minbase``, Ubuntu by default, or Debian) into a
  directory with the packages included, the GitHub Actions runner in ``/opt/runner`` (downloaded,
  or from a local ``runner_tarball``; its version in ``/opt/runner/.blacksmith-runner-version``),
  user ``runner`` (uid 1001, groups docker (gid 121)/sudo), the guest agent and its systemd unit.
  What must differ per VM is removed (``/etc/resolv.conf``, ``/etc/hostname``, the SSH host keys,
  the random seed; ``/etc/machine-id`` left empty): the agent writes them at boot. The directory
  becomes the filesystem with ``mkfs.ext4 -d`` (no loop mount);
- ``rootfs.ext4.manifest.json`` (:func:`manifest_path`): runner version, distribution, suite,
  packages; ``doctor`` compares its runner version with GitHub's latest release.

Point ``kernel_path``/``rootfs_path`` at them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from blacksmith_mini.vm.firecracker import image_runner
from blacksmith_mini.vm.firecracker.image_steps import Step, in_chroot, link, write

CHECKOUT_IMAGES = Path(__file__).resolve().parents[4] / "images"
WHEEL_IMAGES = Path(__file__).resolve().parents[2] / "_images"  # put there by hatch_build.py
REPO_IMAGES = CHECKOUT_IMAGES if CHECKOUT_IMAGES.is_dir() else WHEEL_IMAGES
FC_CONFIG_URL = (
    "https://raw.githubusercontent.com/firecracker-microvm/firecracker/v1.16.1/"
    "resources/guest_configs/microvm-kernel-ci-x86_64-6.1.config"
)
GUEST_PACKAGES = (
    *("systemd-sysv", "udev", "dbus", "iproute2", "iptables", "ca-certificates", "curl", "git"),
    *("sudo", "openssh-server", "python3", "docker.io", "jq", "unzip", "zstd", "haveged", "tar"),
    *("gzip", "locales"),
)
DISTRIBUTIONS = {  # name -> (default mirror, components)
    "ubuntu": ("http://archive.ubuntu.com/ubuntu", "main,universe"),
    "debian": ("http://deb.debian.org/debian", "main"),
}
# Per-VM identity: never baked into the image (the agent makes fresh ones at boot; dbus reads
# /etc/machine-id when /var/lib/dbus/machine-id is absent).
IDENTITY_FILES = (
    *("etc/resolv.conf", "etc/hostname", "var/lib/systemd/random-seed"),
    "var/lib/dbus/machine-id",
)
HOSTS = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
UNIT_DIR = "etc/systemd/system"


def manifest_path(rootfs: Path) -> Path:
    """The manifest written next to a built root filesystem (``rootfs.ext4.manifest.json``)."""
    return rootfs.with_name(rootfs.name + ".manifest.json")


def plan_build(
    *,
    output_dir: Path,
    runner_version: str,
    kernel_version: str = "6.1.141",
    ubuntu_suite: str = "noble",
    distribution: str = "ubuntu",
    suite: str | None = None,
    mirror: str | None = None,
    packages: Sequence[str] = GUEST_PACKAGES,
    runner_tarball: Path | None = None,
    runner_dependencies: bool = True,
    kernel: Path | None = None,
    skip_kernel: bool = False,
    rootfs_size_gib: int = 10,
    keep_tree: bool = False,
    debootstrap_cache: Path | None = None,
    jobs: int | None = None,
    images_dir: Path = REPO_IMAGES,
) -> list[Step]:
    """Every step of the build, in order. ``suite`` defaults to ``ubuntu_suite`` for Ubuntu and
    to ``bookworm`` for Debian; ``mirror`` to the distribution's own."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {distribution!r}: one of {sorted(DISTRIBUTIONS)}")
    work = output_dir / "build"
    if skip_kernel:
        kernel_steps: list[Step] = []
    elif kernel is not None:
        given = ("install", "-m", "0644", str(kernel), str(output_dir / "vmlinux"))
        kernel_steps = [Step(what="install the given vmlinux", argv=given)]
    else:
        kernel_steps = _kernel_steps(
            work=work,
            output_dir=output_dir,
            version=kernel_version,
            jobs=jobs or os.cpu_count() or 2,
            images_dir=images_dir,
        )
    default_mirror, components = DISTRIBUTIONS[distribution]
    chosen_suite = suite or (ubuntu_suite if distribution == "ubuntu" else "bookworm")
    manifest = {
        "runner_version": runner_version,
        "distribution": distribution,
        "suite": chosen_suite,
        "mirror": mirror or default_mirror,
        "packages": list(packages),
        "kernel_version": None if skip_kernel or kernel else kernel_version,
    }
    return [
        Step(what="work directory", argv=("mkdir", "-p", str(work))),
        *kernel_steps,
        *_rootfs_steps(
            work=work,
            output_dir=output_dir,
            runner_version=runner_version,
            debootstrap=_debootstrap(
                tree=work / "rootfs",
                suite=chosen_suite,
                mirror=mirror or default_mirror,
                components=components,
                packages=packages,
                cache=debootstrap_cache,
            ),
            packages=packages,
            runner_tarball=runner_tarball,
            runner_dependencies=runner_dependencies,
            size_gib=rootfs_size_gib,
            keep_tree=keep_tree,
            images_dir=images_dir,
            manifest=json.dumps(manifest, indent=2) + "\n",
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


def _debootstrap(
    *,
    tree: Path,
    suite: str,
    mirror: str,
    components: str,
    packages: Sequence[str],
    cache: Path | None,
) -> Step:
    argv = ["debootstrap", "--variant=minbase", f"--components={components}"]
    if packages:
        argv.append("--include=" + ",".join(packages))
    if cache is not None:
        argv.append(f"--cache-dir={cache}")
    return Step(what="debootstrap", argv=(*argv, suite, str(tree), mirror))


def _host_keys(tree: Path) -> tuple[str, ...]:
    return (str(tree / "etc"), "-maxdepth", "2", "-path", str(tree / "etc/ssh/ssh_host_*"))


def _rootfs_steps(
    *,
    work: Path,
    output_dir: Path,
    runner_version: str,
    debootstrap: Step,
    packages: Sequence[str],
    runner_tarball: Path | None,
    runner_dependencies: bool,
    size_gib: int,
    keep_tree: bool,
    images_dir: Path,
    manifest: str,
) -> list[Step]:
    image = output_dir / "rootfs.ext4"
    partial = output_dir / "rootfs.ext4.partial"
    tree = work / "rootfs"
    wants = tree / UNIT_DIR / "multi-user.target.wants"
    tarball = runner_tarball or work / f"actions-runner-{runner_version}.tar.gz"
    agent = images_dir / "guest" / "blacksmith-agent.py"
    identity = images_dir / "guest" / "blacksmith_identity.py"  # imported by the agent
    unit = images_dir / "guest" / "blacksmith-agent.service"
    steps = [
        Step(what="fresh tree", argv=("rm", "-rf", "--one-file-system", str(tree))),
        debootstrap,
        Step(what="docker group", argv=in_chroot(tree, "groupadd", "-f", "docker")),
        Step(what="docker group gid 121", argv=in_chroot(tree, "groupmod", "-g", "121", "docker")),
        Step(
            what="runner user",
            argv=in_chroot(
                tree,
                "useradd",
                "-m",
                "-u",
                "1001",
                "-G",
                "docker,sudo",
                "-s",
                "/bin/bash",
                "runner",
            ),
        ),
        Step(what="sudoers.d", argv=("install", "-d", "-m", "0750", str(tree / "etc/sudoers.d"))),
        write(
            "passwordless sudo",
            tree / "etc/sudoers.d/runner",
            text="runner ALL=(ALL) NOPASSWD:ALL\n",
        ),
        Step(what="sudoers mode", argv=("chmod", "0440", str(tree / "etc/sudoers.d/runner"))),
        write("fstab", tree / "etc/fstab", text="/dev/vda / ext4 defaults,noatime 0 1\n"),
        write("hosts", tree / "etc/hosts", text=HOSTS),
    ]
    steps += image_runner.runner_steps(
        tree=tree,
        tarball=tarball,
        runner_version=runner_version,
        download=runner_tarball is None,
        dependencies=runner_dependencies,
        images_dir=images_dir,
    )
    steps += [
        Step(
            what="runner owns /opt/runner",
            argv=in_chroot(tree, "chown", "-R", "runner:runner", "/opt/runner"),
        ),
        Step(
            what="guest agent",
            argv=(
                "install",
                "-m",
                "0755",
                str(agent),
                str(tree / "usr/local/bin/blacksmith-agent"),
            ),
        ),
        Step(
            what="guest identity module",
            argv=(
                "install",
                "-m",
                "0644",
                str(identity),
                str(tree / "usr/local/bin" / identity.name),
            ),
        ),
        Step(what="unit directory", argv=("mkdir", "-p", str(wants))),
        Step(
            what="agent unit",
            argv=("install", "-m", "0644", str(unit), str(tree / UNIT_DIR / unit.name)),
        ),
        link("enable agent", f"/{UNIT_DIR}/{unit.name}", link=wants / unit.name),
        link(
            "no getty on the serial console",
            "/dev/null",
            link=tree / UNIT_DIR / "serial-getty@ttyS0.service",
        ),
    ]
    if "docker.io" in packages:
        steps.append(
            link(
                "enable docker", "/lib/systemd/system/docker.service", link=wants / "docker.service"
            )
        )
    if "iptables" in packages:
        steps.append(
            Step(
                what="iptables-legacy for Docker",
                argv=in_chroot(
                    tree, "update-alternatives", "--set", "iptables", "/usr/sbin/iptables-legacy"
                ),
            )
        )
    steps += [
        Step(what="clean apt", argv=in_chroot(tree, "apt-get", "clean")),
        Step(
            what="no per-VM identity in the image",
            argv=("rm", "-f", *(str(tree / name) for name in IDENTITY_FILES)),
        ),
        Step(what="no ssh host keys in the image", argv=("find", *_host_keys(tree), "-delete")),
        Step(what="empty machine-id", argv=("truncate", "-s", "0", str(tree / "etc/machine-id"))),
        Step(what="sparse image file", argv=("truncate", "-s", f"{size_gib}G", str(partial))),
        Step(
            what="ext4 filesystem from the tree",
            argv=("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", str(tree), str(partial)),
        ),
        Step(what="check filesystem", argv=("e2fsck", "-fn", str(partial))),
        Step(what="install rootfs", argv=("mv", "-f", str(partial), str(image))),
        write("manifest", manifest_path(image), text=manifest),
    ]
    if not keep_tree:
        steps.append(
            Step(what="remove the tree", argv=("rm", "-rf", "--one-file-system", str(tree)))
        )
    return steps


def build_image(
    *,
    output_dir: Path,
    runner_version: str,
    kernel_version: str = "6.1.141",
    ubuntu_suite: str = "noble",
    rootfs_size_gib: int = 10,
    **options: object,
) -> tuple[Path | None, Path]:
    """Build ``vmlinux`` (unless skipped) and ``rootfs.ext4`` in ``output_dir``; return their
    paths. ``options`` are :func:`plan_build`'s other keywords.

    Needs root, the network (or the local inputs) and the tools listed in the module docstring.
    """
    if os.geteuid() != 0:
        raise PermissionError("image build needs root (debootstrap, chroot)")
    output_dir.mkdir(parents=True, exist_ok=True)
    steps = plan_build(
        output_dir=output_dir,
        runner_version=runner_version,
        kernel_version=kernel_version,
        ubuntu_suite=ubuntu_suite,
        rootfs_size_gib=rootfs_size_gib,
        **options,  # type: ignore[arg-type]
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
        tree = output_dir / "build" / "rootfs"  # leave no mount behind on failure
        subprocess.run(["umount", str(tree / "proc")], check=False, capture_output=True)
        (output_dir / "rootfs.ext4.partial").unlink(missing_ok=True)
        raise
    kernel = None if options.get("skip_kernel") else output_dir / "vmlinux"
    return kernel, output_dir / "rootfs.ext4"
