"""Template VMs: one per pool size and image, booted until its agent waits for boot data,
then paused and snapshotted, so a VM can start by restoring a clone instead of booting.

A template lives in ``<data_dir>/templates/<digest>/`` (named ``<pool>-<size>-<digest>``):
its disk, configured by the *relative* path ``rootfs.ext4`` so that a clone started in its
own directory opens its own copy there; ``vm.snap`` and ``vm.mem``, a full snapshot never
written again (a clone maps the memory file copy-on-write); and ``template.json``, written
last (the template is ready only then). The digest covers everything that must match for a
restore to be right: the pool's vCPUs and memory, the image and kernel (path, size,
modification time), the boot arguments, Firecracker's version and the host kernel's
release. When any changes, the old template is not used: a new one is built under its new
digest and the old directory removed (a running clone keeps its memory file's pages:
unlinking does not unmap). The template VM runs in its own network namespace with the inside
address every clone keeps (``network.lease_for``). A build that fails is retried after
``RETRY_SECONDS``; the reason is kept for the VMs that boot cold meanwhile. Not with the
jailer yet (each jailed VM has its own chroot).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import api, disks, naming, network, proc, spawning, state
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

log = logging.getLogger(__name__)
READY_MARK = "blacksmith-agent: template-ready"
RETRY_SECONDS = 60.0
TEMPLATE_INSTANCE = "bmtemplate"
RELATIVE_ROOTFS = "rootfs.ext4"
SUPERVISOR_MODULE = "blacksmith_mini.vm.firecracker.supervisor"
MAX_SOCKET_PATH = 107


@dataclasses.dataclass(frozen=True)
class Template:
    name: str
    dir: Path

    @property
    def rootfs(self) -> Path:
        return self.dir / RELATIVE_ROOTFS

    @property
    def snapshot(self) -> Path:
        return self.dir / "vm.snap"

    @property
    def memory(self) -> Path:
        return self.dir / "vm.mem"


def _identity(path: Path) -> list[object]:
    try:
        found = path.stat()
    except OSError:
        return [str(path), None, None]
    return [str(path), found.st_size, found.st_mtime_ns]


def firecracker_version(settings: FirecrackerSettings) -> str:
    """``firecracker --version``'s first line ("" when it cannot say)."""
    try:
        done = subprocess.run(
            [str(settings.firecracker_bin), "--version"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


def key_for(settings: FirecrackerSettings, spec: driver.VmSpec, *, version: str) -> dict[str, Any]:
    return {
        "pool": spec.pool,
        "vcpus": spec.vcpus,
        "memory_mib": spec.memory_mib,
        "rootfs": _identity(settings.rootfs_path),
        "kernel": _identity(settings.kernel_path),
        "boot_args": settings.boot_args,
        "firecracker": version,
        "host_kernel": os.uname().release,
    }


def name_for(key: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{key['pool']}-{key['vcpus']}c{key['memory_mib']}m-{digest}"


def _dir_name(name: str) -> str:
    """A template's directory: its digest only (its API socket's path must stay short)."""
    return name.rsplit("-", 1)[1]


class Templates:
    """The driver's templates: which is ready for a start, and building the missing ones."""

    def __init__(self, *, settings: FirecrackerSettings, data_dir: Path, net: network.Network):
        self.settings = settings
        self.root = data_dir / "templates"
        self.net = net
        self.failures: dict[str, tuple[float, str]] = {}  # name -> (when, why)
        self.reserved_slots: set[int] = set()
        self.leases: dict[str, naming.NetLease] = {}  # builds' networks, kept from sweeps
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._version: str | None = None

    def open(self) -> list[str]:
        """After a crash: kill a template VM still running and remove unfinished templates
        (a ready one stays); what was removed, described."""
        removed: list[str] = []
        prefix = str(self.root) + "/"
        for pid, _ in proc.find_by_cmdline(SUPERVISOR_MODULE, prefix):
            if proc.kill_group(pid):
                removed.append(f"template VM process group {pid}")
        for found in self.root.glob("*/") if self.root.exists() else ():
            if not (found / "template.json").is_file():
                shutil.rmtree(found, ignore_errors=True)
                removed.append(f"unfinished template {found.name}")
        return removed

    async def close(self) -> None:
        """Stop the builds in flight (each kills its VM and removes its directory)."""
        for task in list(self._builds.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def version(self) -> str:
        if self._version is None:
            self._version = firecracker_version(self.settings)
        return self._version

    def key(self, spec: driver.VmSpec) -> dict[str, Any]:
        return key_for(self.settings, spec, version=self.version())

    def ready_for(self, spec: driver.VmSpec) -> Template | None:
        """The template a start of ``spec`` may restore, if one is ready and matches."""
        key = self.key(spec)
        found = Template(name_for(key), self.root / _dir_name(name_for(key)))
        try:
            meta = json.loads((found.dir / "template.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("key") != key or not all(
            p.is_file() for p in (found.rootfs, found.snapshot, found.memory)
        ):
            return None
        return found

    def for_start(self, spec: driver.VmSpec, *, used_slots: set[int]) -> Template | str:
        """The template a start restores, or why it boots cold; a missing template is built
        in the background meanwhile, on a slot of its own (none free: not now)."""
        found = self.ready_for(spec)
        if found is not None:
            return found
        free = set(range(self.settings.slot_count)) - used_slots - self.reserved_slots
        if free:
            self.ensure(spec, slot=min(free))
        return f"cold boot: {self.why_not(spec)}"

    def why_not(self, spec: driver.VmSpec) -> str:
        """Why ``spec`` boots cold (no template ready): building, failed, or not yet asked."""
        name = name_for(self.key(spec))
        if name in self.failures:
            return f"template {name} failed: {self.failures[name][1]}"
        return f"template {name} is being built" if name in self._builds else "no template yet"

    def ensure(self, spec: driver.VmSpec, *, slot: int) -> None:
        """Build ``spec``'s template in the background on ``slot`` (reserved until done)."""
        name = name_for(self.key(spec))
        failed = self.failures.get(name)
        if name in self._builds or (failed and time.time() - failed[0] < RETRY_SECONDS):
            return
        self.reserved_slots.add(slot)
        task = asyncio.create_task(self._build_quietly(spec, slot=slot), name=f"template-{name}")
        self._builds[name] = task

        def done(_: asyncio.Task[None]) -> None:
            self._builds.pop(name, None)
            self.reserved_slots.discard(slot)

        task.add_done_callback(done)

    async def _build_quietly(self, spec: driver.VmSpec, *, slot: int) -> None:
        key = self.key(spec)
        try:
            await self.build(spec, slot=slot)
        except Exception as exc:
            self.failures[name_for(key)] = (time.time(), str(exc)[:500])
            log.warning("template %s: %s (VMs boot cold)", name_for(key), exc)

    async def build(self, spec: driver.VmSpec, *, slot: int) -> Template:
        """Boot the template VM, wait for its agent, pause, snapshot, stop it; then mark it
        ready and remove the pool's stale templates."""
        key = self.key(spec)
        found = Template(name_for(key), self.root / _dir_name(name_for(key)))
        s = self.settings
        shutil.rmtree(found.dir, ignore_errors=True)
        found.dir.mkdir(parents=True)
        lease = network.lease_for(s, slot=slot, instance_id=f"tpl{found.dir.name}")
        self.leases[found.name] = lease
        await disks.clone_off_loop(
            disks.strategy(s.rootfs_strategy), src=s.rootfs_path, dst=found.rootfs
        )
        await self.net.add_vm(lease, uid=None, gid=None)
        socket = found.dir / "api.sock"
        if len(str(socket)) > MAX_SOCKET_PATH:
            raise driver.VmStartError(
                f"template socket path {socket} is too long: shorten data_dir"
            )
        child = spawning.spawn(
            s,
            state_dir=found.dir,
            socket=str(socket),
            instance_id=TEMPLATE_INSTANCE,
            wrap=lambda argv: self.net.command(lease, argv),
        )
        try:
            client = api.FirecrackerApi(socket_path=socket, timeout=s.api_timeout)
            try:
                await self._boot_and_snapshot(client, found, spec=spec, lease=lease)
            finally:
                await client.aclose()
        except Exception as exc:
            said = state.tail(found.dir / "supervisor.log", 600) or state.tail(
                found.dir / "console.log", 600
            )
            shutil.rmtree(found.dir, ignore_errors=True)
            note = f" ({said.strip()})" if said.strip() else ""
            raise driver.VmStartError(f"{exc}{note}") from exc
        except BaseException:
            shutil.rmtree(found.dir, ignore_errors=True)
            raise
        finally:
            proc.kill_group(child.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await anyio.to_thread.run_sync(lambda: child.wait(timeout=10))
            with anyio.CancelScope(shield=True):
                await self.net.remove_vm(lease)
                self.leases.pop(found.name, None)
        temporary = found.dir / "template.json.tmp"
        temporary.write_text(json.dumps({"key": key, "created_at": time.time()}))
        temporary.replace(found.dir / "template.json")
        same = {"pool": spec.pool, "vcpus": spec.vcpus, "memory_mib": spec.memory_mib}
        for other in self.root.glob("*/template.json"):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                theirs = json.loads(other.read_text())["key"]
                if other.parent != found.dir and all(theirs.get(k) == v for k, v in same.items()):
                    shutil.rmtree(other.parent, ignore_errors=True)  # stale: image, kernel, VMM
        self.failures.pop(found.name, None)
        log.info("template %s ready", found.name)
        return found

    async def _boot_and_snapshot(
        self,
        client: api.FirecrackerApi,
        found: Template,
        *,
        spec: driver.VmSpec,
        lease: naming.NetLease,
    ) -> None:
        s = self.settings
        await client.wait_until_ready(deadline=time.monotonic() + s.socket_timeout)
        await client.put_logger(log_path=str(found.dir / "firecracker.log"), level=s.log_level)
        await client.put_metrics(metrics_path=str(found.dir / "metrics.json"))
        await client.put_machine_config(vcpus=spec.vcpus, memory_mib=spec.memory_mib)
        boot_args = f"{s.boot_args} {naming.kernel_ip_arg(lease=lease, dns_servers=s.dns_servers)}"
        await client.put_boot_source(kernel_image_path=str(s.kernel_path), boot_args=boot_args)
        await client.put_root_drive(drive_id=naming.ROOT_DRIVE_ID, path_on_host=RELATIVE_ROOTFS)
        await client.put_network_interface(
            iface_id=naming.IFACE_ID, host_dev_name=lease.vm_tap, guest_mac=lease.mac
        )
        await client.put_mmds_config(iface_ids=[naming.IFACE_ID])
        await client.put_mmds(
            {"latest": {"meta-data": {"blacksmith": {"template": True, "pool": spec.pool}}}}
        )
        await client.instance_start()
        deadline = time.monotonic() + s.boot_timeout
        console = found.dir / "console.log"
        while READY_MARK not in state.tail(console, 64 * 1024):
            if time.monotonic() > deadline:
                raise driver.VmStartError(
                    f"the template VM's agent did not say it was ready within {s.boot_timeout:.0f}s"
                )
            await anyio.sleep(0.02)
        await client.pause()
        await client.create_snapshot(
            snapshot_path=str(found.snapshot), mem_file_path=str(found.memory)
        )
