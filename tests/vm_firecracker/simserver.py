"""The real server (``up --simulate``) with ``vm.driver = "firecracker"`` pointed at the fake
Firecracker, run inside a network namespace the test creates, so the real ``HostNetwork``
creates its taps and nftables table there and never in the host's namespace.

The server is started with ``ip netns exec NS python -m blacksmith_mini up ...``. The test reaches
its API from one worker thread that has entered the namespace with ``setns(2)`` (a network
namespace is per thread), so ``server.harness.Server``'s plain HTTP calls work unchanged. The
simulated runners inside the fake reach the broker at ``http://127.0.0.1:<port>/_sim/broker``:
the namespace's own loopback, where the server listens.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from server.harness import Server, free_port

FAKE_FIRECRACKER = Path(__file__).resolve().parents[1] / "fakes" / "fake_firecracker.py"
CLONE_NEWNET = 0x40000000
TAP_PREFIX = "fcsim"  # not the default: the sweep of a test server only ever sees its own
NFT_TABLE = "blacksmith_mini"
T = TypeVar("T")


def netns_unavailable() -> str | None:
    """Why the namespace tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, taps and nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 nftables)"
    return None


class Netns:
    """A network namespace with ``lo`` up; ``run`` executes argv inside it."""

    def __init__(self, prefix: str = "bmfc") -> None:
        self.name = f"{prefix}{uuid.uuid4().hex[:8]}"

    def create(self) -> Netns:
        result = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot create a network namespace here: {result.stderr.strip()}")
        self.run("ip", "link", "set", "lo", "up")
        return self

    def run(self, *argv: str, check: bool = True) -> str:
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True, check=check
        ).stdout

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)

    # -- what our driver left in it ----------------------------------------------------------

    def interfaces(self, prefix: str = TAP_PREFIX) -> list[str]:
        links = json.loads(self.run("ip", "-j", "link", "show") or "[]")
        return sorted(str(link["ifname"]) for link in links if link["ifname"].startswith(prefix))

    def nft_elements(self, table: str = NFT_TABLE) -> list[str]:
        """The ``vm_addrs`` elements (``"<tap>" . <ip>``); [] when the table does not exist."""
        out = self.run("nft", "-j", "list", "set", "inet", table, "vm_addrs", check=False)
        if not out:
            return []
        found: list[str] = []
        for item in json.loads(out)["nftables"]:
            for element in item.get("set", {}).get("elem", []):
                parts = element["concat"]
                found.append(f'"{parts[0]}" . {parts[1]}')
        return found


class NetnsThread:
    """One worker thread living inside a network namespace; ``call`` runs a function there."""

    def __init__(self, netns: str) -> None:
        self._path = f"/var/run/netns/{netns}"
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"ns-{netns}", initializer=self._enter
        )

    def _enter(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(self._path, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({self._path})")
        finally:
            os.close(fd)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        return self._pool.submit(fn, *args).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class NetnsServer(Server):
    """``harness.Server`` run inside ``netns`` with the Firecracker driver and the fake."""

    def __init__(
        self,
        data_dir: Path,
        *,
        netns: Netns,
        images: tuple[Path, Path],
        port: int | None = None,
        **env: str,
    ) -> None:
        kernel, rootfs = images
        base = {
            "BLACKSMITH_VM__DRIVER": "firecracker",
            "BLACKSMITH_VM__MAX_VMS": "3",
            "BLACKSMITH_TICK_INTERVAL": "0.5",
            # A VM started for a job another VM took (the planner can over-provision when a
            # runner turns busy before GitHub lists its job in progress) is idle: end it soon.
            "BLACKSMITH_VM__TIMEOUTS__IDLE": "4",
            "BLACKSMITH_VM__FIRECRACKER__FIRECRACKER_BIN": str(FAKE_FIRECRACKER),
            "BLACKSMITH_VM__FIRECRACKER__KERNEL_PATH": str(kernel),
            "BLACKSMITH_VM__FIRECRACKER__ROOTFS_PATH": str(rootfs),
            "BLACKSMITH_VM__FIRECRACKER__MIN_FREE_DISK_MIB": "0",
            "BLACKSMITH_VM__FIRECRACKER__TAP_PREFIX": TAP_PREFIX,
            "BLACKSMITH_VM__FIRECRACKER__STOP_GRACE_SECONDS": "1",
            "BLACKSMITH_VM__FIRECRACKER__SOCKET_TIMEOUT": "5",
            "BLACKSMITH_VM__FIRECRACKER__CONSOLE_MAX_BYTES": "65536",
            "FAKE_FC_CHECK_TAP": "1",  # the fake refuses a tap missing from the namespace
        }
        super().__init__(data_dir, port=port, **{**base, **env})
        self.netns = netns
        self._thread: NetnsThread | None = None

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns.name, *super().command()]

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self._thread is None:
            self._thread = NetnsThread(self.netns.name)
        return self._thread.call(super().request, method, path, body)

    def kill(self) -> None:
        """SIGKILL the control plane (its VMs live on in their own sessions)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._thread is not None:
            self._thread.close()
            self._thread = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    # -- facts -------------------------------------------------------------------------------

    def sim_state(self) -> dict[str, Any]:
        """The simulated GitHub as persisted in ``<data_dir>/simulated-github.json``."""
        try:
            return dict(json.loads((self.data_dir / "simulated-github.json").read_text()))
        except (OSError, ValueError):
            return {"runs": {}, "jobs": {}, "runners": {}}

    def runners(self) -> dict[str, Any]:
        return dict(self.sim_state()["runners"])

    def sim_job(self, job_id: int) -> dict[str, Any]:
        return dict(self.sim_state()["jobs"][str(job_id)])

    def vm_dirs(self) -> list[str]:
        vms = self.data_dir / "vms"
        return sorted(p.name for p in vms.iterdir()) if vms.is_dir() else []

    def completed(self, job_id: int) -> dict[str, Any] | None:
        """The job once completed (None before, including before the loop has seen it)."""
        status, job = self.get(f"/api/jobs/{job_id}")
        return dict(job) if status == 200 and job["status"] == "completed" else None


class SimEnv:
    """A namespace, a short data dir and dummy images shared by successive servers (restarts)."""

    def __init__(self, netns: Netns, data_dir: Path) -> None:
        self.netns = netns
        self.data_dir = data_dir
        self.images = make_images(data_dir.parent / "images")
        self.port = free_port()  # kept across restarts: the runners' broker URL names it
        self.servers: list[NetnsServer] = []

    def server(self, **env: str) -> NetnsServer:
        server = NetnsServer(
            self.data_dir, netns=self.netns, images=self.images, port=self.port, **env
        )
        self.servers.append(server)
        return server

    def close(self) -> None:
        for server in self.servers:
            server.close()


def vm_processes(data_dir: Path) -> list[str]:
    """Live processes of our VMs: supervisors, fake VMMs, guest agents and runners.

    They all run with their working directory in ``<data_dir>/vms`` (or name it on their
    command line); the server itself (``--data-dir <data_dir>``) does neither.
    """
    marker = str((data_dir / "vms").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (marker in cmdline or cwd.startswith(marker)):
            found.append(f"{entry.name}: {cmdline[:160]}")
    return found


def kill_vm_processes(data_dir: Path) -> None:
    for line in vm_processes(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)


def our_namespaces() -> list[str]:
    """Named network namespaces of the test servers' VMs and templates (``<tap_prefix>_...``)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = (line.split()[0] for line in listed.splitlines() if line.strip())
    return sorted(name for name in names if name.startswith(f"{TAP_PREFIX}_"))


def assert_nothing_left(
    server: NetnsServer, *, timeout: float = 15.0, runners: bool = True
) -> None:
    """No tap, nft element, state dir (socket, disk), VM process or runner registration.

    ``runners=False`` skips the registrations: a runner that was busy when the control plane
    stopped stays registered at GitHub until GitHub notices it is lost, as on the real GitHub.
    """

    def facts() -> dict[str, Any]:
        found: dict[str, Any] = {
            "interfaces": server.netns.interfaces(),
            "nft elements": server.netns.nft_elements(),
            "vm dirs": server.vm_dirs(),
            "processes": vm_processes(server.data_dir),
            "namespaces": our_namespaces(),
        }
        if runners:
            found["runners"] = server.runners()
        return found

    deadline = time.monotonic() + timeout
    while True:
        left = {key: value for key, value in facts().items() if value}
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"left behind after {timeout}s: {left}\n--- server log ---\n"
                f"{server.log_text()[-3000:]}"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def short_data_dir() -> Iterator[Path]:
    """A data dir with a short path: API socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="bmfc-"))
    try:
        yield path / "data"
    finally:
        kill_vm_processes(path / "data")
        shutil.rmtree(path, ignore_errors=True)


def make_images(directory: Path) -> tuple[Path, Path]:
    """Tiny dummy kernel and rootfs files (the fake only opens them)."""
    directory.mkdir(parents=True, exist_ok=True)
    kernel, rootfs = directory / "vmlinux", directory / "rootfs.ext4"
    kernel.write_bytes(b"\x7fELF fake kernel")
    with rootfs.open("wb") as f:
        f.write(b"superblock" * 10)
        f.truncate(1024 * 1024)
    return kernel, rootfs
