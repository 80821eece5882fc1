"""The GitHub Actions runner in the guest image: fetched (or a local tarball), unpacked,
patched so that cache steps reach the in-VM cache proxy (``runner_patch``), its dependencies
installed; and the in-VM cache proxy itself (``images/guest/blacksmith-cache-proxy.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

from blacksmith_mini.vm.firecracker import runner_patch
from blacksmith_mini.vm.firecracker.image_steps import Step, in_chroot, write

RUNNER_VERSION_FILE = "opt/runner/.blacksmith-runner-version"
CACHE_PROXY = "usr/local/bin/blacksmith-cache-proxy"


def runner_url(version: str, arch: str = "x64") -> str:
    """Download URL of the GitHub Actions runner tarball."""
    return (
        f"https://github.com/actions/runner/releases/download/v{version}/"
        f"actions-runner-linux-{arch}-{version}.tar.gz"
    )


def runner_steps(
    *,
    tree: Path,
    tarball: Path,
    runner_version: str,
    download: bool,
    dependencies: bool,
    images_dir: Path,
) -> list[Step]:
    """Steps that put the runner (patched) and the cache proxy into ``tree``. The patch step
    fails the build, saying why, when the runner is not one the patch fits."""
    steps = []
    if download:
        steps.append(
            Step(
                what="runner tarball",
                argv=("curl", "-fsSL", "-o", str(tarball), runner_url(runner_version)),
            )
        )
    steps += [
        Step(what="runner dir", argv=("mkdir", "-p", str(tree / "opt/runner"))),
        Step(
            what="unpack runner", argv=("tar", "-xzf", str(tarball), "-C", str(tree / "opt/runner"))
        ),
        write("runner version", tree / RUNNER_VERSION_FILE, text=runner_version + "\n"),
        Step(
            what="runner cache redirect",
            argv=(
                sys.executable,
                "-m",
                runner_patch.__name__,
                str(tree / "opt/runner" / runner_patch.WORKER_DLL),
            ),
        ),
        Step(
            what="cache proxy",
            argv=(
                "install",
                "-m",
                "0755",
                str(images_dir / "guest" / "blacksmith-cache-proxy.py"),
                str(tree / CACHE_PROXY),
            ),
        ),
    ]
    if dependencies:
        steps += [
            Step(what="mount /proc", argv=("mount", "-t", "proc", "proc", str(tree / "proc"))),
            Step(
                what="runner dependencies",
                argv=in_chroot(tree, "/opt/runner/bin/installdependencies.sh"),
            ),
            Step(what="unmount /proc", argv=("umount", str(tree / "proc"))),
        ]
    return steps
