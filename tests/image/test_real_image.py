"""``blacksmith-mini image build`` for real, then the image's userland booted as two guests.

The build runs end to end here: debootstrap of Debian bookworm from deb.debian.org (Ubuntu's
archive is out of reach), a small package set, a stand-in runner tarball (GitHub's is out of
reach too), no kernel (kernel.org neither), ``mkfs.ext4 -d``. It is cached under
``/var/cache/blacksmith-test-image/<hash of every input>`` so a second run takes seconds.

Each guest is the built tree under an overlay in its own PID, mount, network and UTS
namespaces (``guest_container.py``), with MMDS at 169.254.169.254 there, running the image's
REAL agent as its unit starts it. Needs root, debootstrap, unshare, overlayfs and the mirror:
skipped otherwise, except on CI (``CI`` set), where it must run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from blacksmith_mini.vm.firecracker import image, image_runner, mmds, runner_patch
from image.guest_support import RUNNER_LINES, jit_config, stand_in_run_sh

pytestmark = pytest.mark.slow

CACHE = Path("/var/cache/blacksmith-test-image")
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ("python3", "openssh-server", "iproute2", "sudo", "ca-certificates")
RUNNER_VERSION = "2.999.0"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
INPUTS = (
    REPO / "src/blacksmith_mini/vm/firecracker/image.py",
    REPO / "src/blacksmith_mini/vm/firecracker/image_runner.py",
    REPO / "src/blacksmith_mini/vm/firecracker/runner_patch.py",
    REPO / "images/guest/blacksmith-agent.py",
    REPO / "images/guest/blacksmith_identity.py",
    REPO / "images/guest/blacksmith-agent.service",
    REPO / "images/guest/blacksmith-cache-proxy.py",
)
# A stand-in Runner.Worker.dll: the two literals the cache redirect renames, as the assembly's
# user-string heap holds them, among other bytes.
WORKER_DLL = (
    b"MZ\x90\x00"
    + b"\x01" * 64
    + b"".join(runner_patch.user_string(name) + b"\x02" * 16 for name in runner_patch.RENAMES)
)


def prerequisites() -> str | None:
    """Why this test cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, namespaces)"
    for tool in ("debootstrap", "mkfs.ext4", "debugfs", "unshare", "chroot", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install debootstrap e2fsprogs iproute2)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "no overlayfs in this kernel"
    try:
        request = urllib.request.Request(f"{MIRROR}/dists/{SUITE}/Release", method="HEAD")
        urllib.request.urlopen(request, timeout=10).close()
    except OSError as exc:
        return f"the mirror {MIRROR} is unreachable ({exc})"
    return None


@pytest.fixture(scope="module")
def built() -> Path:
    """The built image's output directory (cached by the hash of every input)."""
    reason = prerequisites()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the real-image test must run on CI: {reason}")
        pytest.skip(f"real image build: {reason}")
    digest = hashlib.sha256()
    for part in (MIRROR, SUITE, RUNNER_VERSION, ",".join(PACKAGES), stand_in_run_sh()):
        digest.update(part.encode() + b"\0")
    for path in INPUTS:
        digest.update(path.read_bytes() + b"\0")
    out = CACHE / digest.hexdigest()[:16]
    if (out / ".complete").is_file():
        return out
    for stale in CACHE.glob("*"):  # keep one image (and the package cache)
        if stale.name != "debs" and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    out.mkdir(parents=True)
    tarball = out / "stand-in-runner.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("./run.sh")
        script = stand_in_run_sh().encode()
        info.size, info.mode = len(script), 0o755
        tar.addfile(info, io.BytesIO(script))
        dll = tarfile.TarInfo("./bin/Runner.Worker.dll")
        dll.size, dll.mode = len(WORKER_DLL), 0o644
        tar.addfile(dll, io.BytesIO(WORKER_DLL))
    (CACHE / "debs").mkdir(exist_ok=True)
    cli = Path(sys.executable).parent / "blacksmith-mini"
    argv = [str(cli), "image", "build", "--runner-version", RUNNER_VERSION]
    argv += ["--output-dir", str(out), "--distribution", "debian", "--suite", SUITE]
    argv += ["--mirror", MIRROR, "--packages", ",".join(PACKAGES), "--skip-kernel"]
    argv += ["--runner-tarball", str(tarball), "--no-runner-dependencies", "--keep-tree"]
    argv += ["--rootfs-size-gib", "1", "--debootstrap-cache", str(CACHE / "debs")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (out / ".complete").write_text(result.stdout)
    return out


def debugfs(rootfs: Path, request: str) -> str:
    result = subprocess.run(
        ["debugfs", "-R", request, str(rootfs)], capture_output=True, text=True, check=True
    )
    return result.stdout + result.stderr


def test_the_image_carries_no_build_host_identity(built: Path) -> None:
    rootfs = built / "rootfs.ext4"
    for path in ("/etc/resolv.conf", "/etc/hostname", "/var/lib/systemd/random-seed"):
        assert "File not found" in debugfs(rootfs, f"stat {path}"), path
    assert "ssh_host_" not in debugfs(rootfs, "ls /etc/ssh") and "sshd_config" in debugfs(
        rootfs, "ls /etc/ssh"
    )
    assert re.search(r"Size:\s+0\b", debugfs(rootfs, "stat /etc/machine-id"))
    version = debugfs(rootfs, f"cat /{image_runner.RUNNER_VERSION_FILE}")
    assert version.startswith(RUNNER_VERSION + "\n")
    assert "runner:x:1001:" in debugfs(rootfs, "cat /etc/passwd")
    assert re.search(r"^docker:x:121:runner$", debugfs(rootfs, "cat /etc/group"), re.M)
    assert "blacksmith-agent.service" in debugfs(
        rootfs, "ls /etc/systemd/system/multi-user.target.wants"
    )
    manifest = json.loads(image.manifest_path(rootfs).read_text())
    assert manifest["runner_version"] == RUNNER_VERSION and manifest["suite"] == SUITE
    tree = built / "build" / "rootfs"  # --keep-tree
    assert (tree / "opt/runner/bin/Runner.Worker.dll").read_bytes() == runner_patch.patch(
        WORKER_DLL
    )
    assert os.access(tree / image_runner.CACHE_PROXY, os.X_OK)
    assert manifest["packages"] == list(PACKAGES)


@pytest.fixture
def guests(built: Path, tmp_path: Path) -> Iterator[list[tuple[Path, str]]]:
    """Boot two guests (one after the other); yields [(overlay dir, console)]. Whatever
    happens, each container's PID namespace is killed, which ends its mounts and netns."""
    tree = built / "build" / "rootfs"
    started: list[subprocess.Popen[str]] = []
    booted = []
    try:
        for number, name in enumerate(("bm-41-ab12", "bm-42-cd34"), start=41):
            work = tmp_path / name
            work.mkdir()
            (work / "boot.json").write_text(json.dumps(boot_data(number, name)))
            process = subprocess.Popen(
                [
                    "unshare",
                    "--net",
                    "--pid",
                    "--mount",
                    "--uts",
                    "--ipc",
                    "--fork",
                    "--kill-child",
                    sys.executable,
                    str(HERE / "guest_container.py"),
                    f"--tree={tree}",
                    f"--work={work}",
                    f"--boot-data={work / 'boot.json'}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            started.append(process)
            console, _ = process.communicate(timeout=120)
            assert process.returncode == 0, console
            booted.append((work / "upper", console))
        yield booted
    finally:
        for process in started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def boot_data(vm_id: int, name: str) -> dict[str, Any]:
    from blacksmith_mini.vm import driver as port

    spec = port.VmSpec(
        vm_id=vm_id,
        name=name,
        pool="default",
        labels=("self-hosted", "linux"),
        vcpus=1,
        memory_mib=512,
        jit_config=jit_config(name),
    )
    store = mmds.boot_data(
        spec,
        instance_id=f"bm{vm_id}x{name.replace('-', '')}",
        ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtestkey test@blacksmith",
        keep_on_failure_seconds=0,
        dns_servers=("1.1.1.1", "8.8.8.8"),
    )
    data: dict[str, Any] = store["latest"]["meta-data"]["blacksmith"]
    return data


def test_two_guests_boot_with_their_own_identity(guests: list[tuple[Path, str]]) -> None:
    identities = []
    for (upper, console), name in zip(guests, ("bm-41-ab12", "bm-42-cd34"), strict=True):
        assert "blacksmith-agent: boot-data-read" in console
        for line in RUNNER_LINES:
            assert line in console, console
        assert "blacksmith-agent: runner exited with code 0" in console
        assert "private-" not in console  # nothing of the JIT config on the console
        resolv = (upper / "etc/resolv.conf").read_text()
        assert re.findall(r"^nameserver (\S+)$", resolv, re.M) == ["1.1.1.1", "8.8.8.8"]
        assert (upper / "etc/hostname").read_text() == f"{name}\n"
        assert f"127.0.1.1\t{name}" in (upper / "etc/hosts").read_text()
        runner = upper / "opt/runner"
        assert (runner / "hostname").read_text().strip() == name  # the kernel's (UTS) name
        assert int((runner / "id").read_text()) == 1001
        assert 121 in {int(g) for g in (runner / "groups").read_text().split()}  # docker
        runner_env = (runner / "env").read_text()
        assert "ACTIONS_RUNNER_INPUT_DISABLEUPDATE=true" in runner_env
        assert "ACTIONS_RESULTS_URL=http://127.0.0.1:51123/" in runner_env  # the cache proxy
        keys = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtestkey test@blacksmith"
        assert keys in (upper / "home/runner/.ssh/authorized_keys").read_text()
        machine_id = (upper / "etc/machine-id").read_text().strip()
        assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
        host_keys = sorted((upper / "etc/ssh").glob("ssh_host_*_key.pub"))
        assert {k.name for k in host_keys} >= {"ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub"}
        identities.append((name, machine_id, {k.read_text() for k in host_keys}))
    (_, id_a, keys_a), (_, id_b, keys_b) = identities
    assert id_a != id_b and keys_a.isdisjoint(keys_b)
