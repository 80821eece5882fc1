"""``FirecrackerDriver``: the VmDriver that runs every runner in its own Firecracker microVM.

Start = preflight (``preflight.py``: binaries, images, disk space, sizes, network) -> state
record -> tap + nft element (with snapshots: the VM's own namespace, usually wired ahead by
``spares``) -> CoW rootfs (copied in a worker thread, ``disks.clone_off_loop``)
-> (jail) -> supervisor + Firecracker in a new process group -> API calls in the documented
order -> ``InstanceStart``. The VMs' records live in one ``registry.Registry``; the watcher
(``watcher.py``) turns them into observations and runs the timers (MMDS wipe, boot timeout, keep
on failure, stop escalation); ``release`` and ``sweep`` live in ``cleanup.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import anyio

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import (
    api,
    cleanup,
    clones,
    disks,
    jailer,
    naming,
    network,
    preflight,
    proc,
    registry,
    spares,
    spawning,
    state,
    supervisor,
    templates,
    watcher,
)
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

log = logging.getLogger(__name__)
MAX_SOCKET_PATH = 107


class FirecrackerDriver:
    """VmDriver for Firecracker microVMs (see docs/FIRECRACKER.md)."""

    name = "firecracker"

    def __init__(
        self,
        *,
        settings: FirecrackerSettings,
        data_dir: Path,
        net: network.Network | None = None,
        poll_interval: float = 0.2,
    ) -> None:
        self.data_dir = data_dir
        self.vms_dir = data_dir / "vms"
        self.net: network.Network = net or network.HostNetwork(settings=settings)
        self.poll_interval = poll_interval
        self.registry = registry.Registry(self.vms_dir)
        self.watcher = watcher.Watcher(
            registry=self.registry, settings=settings, notify=self._notify
        )
        self.templates = templates.Templates(settings=settings, data_dir=data_dir, net=self.net)
        self.spares = spares.Spares(settings=settings, net=self.net)
        self._prewired: set[int] = set()  # VMs whose network was a spare's: wired already
        self._callbacks: list[Callable[[], None]] = []
        self._slot_lock = asyncio.Lock()
        self._watch_task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> FirecrackerSettings:
        """The driver's settings (shared with its watcher)."""
        return self.watcher.settings

    @settings.setter
    def settings(self, value: FirecrackerSettings) -> None:
        self.watcher.settings = value

    @property
    def records(self) -> dict[int, state.VmRecord]:
        """A copy of the VMs' records by vm_id."""
        return self.registry.as_dict()

    # -- lifecycle of the driver -------------------------------------------------------------

    async def open(self) -> None:
        """Adopt VMs recorded under ``<data_dir>/vms``, install our nft table, start watching."""
        self.vms_dir.mkdir(parents=True, exist_ok=True)
        self.registry.load()
        for removed in await anyio.to_thread.run_sync(self.templates.open):
            log.warning("firecracker: removed %s", removed)
        await self.net.prepare([r.net for r in self.registry.records()])
        self.spares.refill(self._used_slots())
        if self._watch_task is None:
            self._watch_task = asyncio.create_task(
                self.watcher.run(self.poll_interval), name="firecracker-watch"
            )

    async def close(self) -> None:
        """Stop watching (and building templates); VMs keep running for the next ``open``."""
        await self.templates.close()
        await self.spares.close()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` whenever an observation changes."""
        self._callbacks.append(callback)

    # -- start -----------------------------------------------------------------------------

    async def preflight(self, spec: driver.VmSpec) -> None:
        """Raise VmStartError (problem and fix) unless ``spec`` can start here; no side effects."""
        await preflight.check(self.settings, spec, vms_dir=self.vms_dir, net=self.net)

    async def start(self, spec: driver.VmSpec) -> driver.VmObservation:
        """Boot a VM for ``spec`` (idempotent per vm_id). Raises VmStartError with the fix."""
        known = self.registry.get(spec.vm_id)
        if known is not None:
            return self.watcher.observe(known)
        async with self._slot_lock:
            await self.preflight(spec)
            record = self._new_record(spec)
            record.save()
            self.registry.add(record)
        try:
            await self._provision(record, spec)
        except Exception as exc:
            detail = f"{spec.name}: {exc}"
            tail = state.tail(record.dir / supervisor.CONSOLE, 1500).strip()
            if tail:
                detail += f"\n--- console ---\n{tail}"
            record.detail = detail
            await self._release_quietly(spec.vm_id)
            raise driver.VmStartError(detail) from exc
        except BaseException:  # cancelled: nothing of the half-started VM may stay
            await self._release_quietly(spec.vm_id)
            raise
        record.phase = "running"
        record.save()
        self._notify()
        self.spares.refill(self._used_slots())
        return self.watcher.observe(record)

    async def _release_quietly(self, vm_id: int) -> None:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await cleanup.release(vms=self.registry, net=self.net, vm_id=vm_id)

    def _new_record(self, spec: driver.VmSpec) -> state.VmRecord:
        s = self.settings
        iid = naming.instance_id(vm_id=spec.vm_id, name=spec.name)
        lease = self.spares.take()
        if lease is not None:
            self._prewired.add(spec.vm_id)
        else:
            try:
                slot = naming.pick_slot(used=self._used_slots(), slot_count=s.slot_count)
            except ValueError as exc:
                raise driver.VmStartError(str(exc)) from exc
            lease = network.lease_for(s, slot=slot, instance_id=iid)
        vm_dir = self.vms_dir / spec.name
        record = state.VmRecord(
            vm_id=spec.vm_id,
            name=spec.name,
            instance_id=iid,
            pool=spec.pool,
            labels=list(spec.labels),
            vcpus=spec.vcpus,
            memory_mib=spec.memory_mib,
            state_dir=str(vm_dir),
            lease=naming.lease_dict(lease),
            rootfs=str(vm_dir / "rootfs.ext4"),
            socket=str(vm_dir / "api.sock"),
            started_at=time.time(),
        )
        if s.jailer_bin:
            jail = self._jail(record)
            record.jail_root, record.cgroup = str(jail.root), str(jail.cgroup)
            record.uid, record.gid = jail.uid, jail.gid
            record.rootfs = str(jail.host_path(jailer.ROOTFS_IN_JAIL))
            record.socket = str(jail.host_path(jailer.SOCKET_IN_JAIL))
        if len(record.socket) > MAX_SOCKET_PATH:
            raise driver.VmStartError(
                f"API socket path {record.socket} is longer than {MAX_SOCKET_PATH} bytes: use a "
                "shorter data_dir (or chroot_base_dir)"
            )
        return record

    def _jail(self, record: state.VmRecord) -> jailer.JailPlan:
        netns = record.net.netns
        return jailer.plan(
            self.settings,
            instance_id=record.instance_id,
            slot=record.net.slot,
            vcpus=record.vcpus,
            memory_mib=record.memory_mib,
            netns_path=network.NETNS_DIR / netns if netns else None,
        )

    async def _provision(self, record: state.VmRecord, spec: driver.VmSpec) -> None:
        s = self.settings
        if spec.vm_id not in self._prewired:
            await self.net.add_vm(record.net, uid=record.uid, gid=record.gid)
        self._prewired.discard(spec.vm_id)
        jail = self._jail(record) if s.jailer_bin else None
        if jail is not None:
            await anyio.to_thread.run_sync(lambda: jailer.prepare(jail, kernel=s.kernel_path))
        snap = s.snapshots and jail is None  # a template to restore, or why not: cold boot
        found = self.templates.for_start(spec, used_slots=self._used_slots()) if snap else None
        template = found if isinstance(found, templates.Template) else None
        record.start_path = found if isinstance(found, str) else None
        if template is not None:
            try:
                await self._restore(record, spec, template)
                return
            except Exception as exc:  # a corrupt snapshot, a load refused: boot cold instead
                record.start_path = f"cold boot: restoring {template.name} failed ({exc})"[:500]
                log.warning("vm %s: %s", record.name, record.start_path)
                self.registry.kill(record)
                await self.registry.await_death(record, timeout=5.0)
                Path(record.rootfs).unlink(missing_ok=True)  # the template's disk: not ours
        await self._copy_disk(record, src=s.rootfs_path, jail=jail)
        Path(record.socket).unlink(missing_ok=True)
        self._spawn(record, jail)
        store = clones.boot_store(self.settings, record=record, spec=spec)
        client = api.FirecrackerApi(socket_path=Path(record.socket), timeout=s.api_timeout)
        try:
            await self._configure(client, record=record, store=store, jail=jail)
        finally:
            await client.aclose()

    async def _copy_disk(
        self, record: state.VmRecord, *, src: Path, jail: jailer.JailPlan | None
    ) -> None:
        rootfs = Path(record.rootfs)
        try:
            await disks.clone_off_loop(
                disks.strategy(self.settings.rootfs_strategy), src=src, dst=rootfs
            )
        except disks.DiskError as exc:
            raise driver.VmStartError(str(exc)) from exc
        if jail is not None:
            jailer.own(jail, rootfs)

    async def _restore(
        self, record: state.VmRecord, spec: driver.VmSpec, template: templates.Template
    ) -> None:
        s = self.settings
        await self._copy_disk(record, src=template.rootfs, jail=None)
        Path(record.socket).unlink(missing_ok=True)
        self._spawn(record, None)
        record.start_path = f"restored from template {template.name}"
        store = clones.boot_store(self.settings, record=record, spec=spec, clone=True)
        client = api.FirecrackerApi(socket_path=Path(record.socket), timeout=s.api_timeout)
        try:
            await clones.restore(client, settings=s, record=record, template=template, store=store)
        finally:
            await client.aclose()

    def _used_slots(self) -> set[int]:
        spare = {lease.slot for lease in self.spares.leases()}
        return {r.net.slot for r in self.registry.records()} | self.templates.reserved_slots | spare

    def _spawn(self, record: state.VmRecord, jail: jailer.JailPlan | None) -> None:
        command = list(jail.argv) if jail is not None else None
        child = spawning.spawn(
            self.settings,
            state_dir=Path(record.state_dir),
            socket=record.socket,
            command=command,
            instance_id=record.instance_id,
            wrap=lambda argv: self.net.command(record.net, argv),
        )
        self.registry.add_child(record.vm_id, child)
        record.supervisor_pid = child.pid
        record.supervisor_ticks = proc.start_ticks(child.pid)
        record.save()

    async def _configure(
        self,
        client: api.FirecrackerApi,
        *,
        record: state.VmRecord,
        store: dict[str, object],
        jail: jailer.JailPlan | None,
    ) -> None:
        s = self.settings
        lease = record.net
        await client.wait_until_ready(deadline=time.monotonic() + s.socket_timeout)
        if jail is not None:
            log_path, metrics_path = jailer.LOG_IN_JAIL, jailer.METRICS_IN_JAIL
            kernel, rootfs = jailer.KERNEL_IN_JAIL, jailer.ROOTFS_IN_JAIL
        else:
            log_path = str(record.dir / "firecracker.log")
            metrics_path = str(record.dir / "metrics.json")
            kernel, rootfs = str(s.kernel_path), record.rootfs
        boot_args = f"{s.boot_args} {naming.kernel_ip_arg(lease=lease, dns_servers=s.dns_servers)}"
        await client.put_logger(log_path=log_path, level=s.log_level)
        await client.put_metrics(metrics_path=metrics_path)
        await client.put_machine_config(vcpus=record.vcpus, memory_mib=record.memory_mib)
        await client.put_boot_source(kernel_image_path=kernel, boot_args=boot_args)
        await client.put_root_drive(drive_id=naming.ROOT_DRIVE_ID, path_on_host=rootfs)
        await client.put_network_interface(
            iface_id=naming.IFACE_ID, host_dev_name=lease.vm_tap, guest_mac=lease.mac
        )
        await client.put_mmds_config(iface_ids=[naming.IFACE_ID])
        await client.put_mmds(dict(store))
        await client.instance_start()
        record.instance_started_at = time.time()
        record.save()

    # -- stop ------------------------------------------------------------------------------

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        """Graceful: SendCtrlAltDel, SIGKILL after the grace period (deferred to the end of a
        keep on failure). Force: SIGKILL now, kept or not."""
        record = self.registry.get(vm_id)
        if record is None or not self.registry.alive(record):
            return
        now = time.time()
        if force:
            self.registry.kill(record)
            await self.registry.await_death(record, timeout=2.0)
        elif self.watcher.in_keep(record, now=now):
            log.info("vm %s: kept for debugging, stop deferred to its end", record.name)
            return  # the watcher stops it when the keep ends
        elif record.stop_requested_at is None:
            await self.watcher.graceful_stop(record, now=now)
        self._notify()

    # -- observe ---------------------------------------------------------------------------

    async def observe(self) -> Mapping[int, driver.VmObservation]:
        """Every VM we hold resources for, alive or exited."""
        return {r.vm_id: self.watcher.observe(r) for r in self.registry.records()}

    def observe_one(self, vm_id: int) -> driver.VmObservation:
        """The observation of one VM now (KeyError if unknown)."""
        record = self.registry.get(vm_id)
        if record is None:
            raise KeyError(vm_id)
        return self.watcher.observe(record)

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        """The end of the VM's serial console."""
        record = self.registry.get(vm_id)
        return state.tail(record.dir / supervisor.CONSOLE, max_bytes) if record else ""

    async def tick(self) -> None:
        """One watcher pass (public so tests can drive it without waiting)."""
        await self.watcher.tick()

    # -- release / sweep (cleanup.py) ------------------------------------------------------

    async def release(self, vm_id: int) -> None:
        """Free everything the VM holds, in order: nft, tap, jail/cgroup, disk, state dir."""
        await cleanup.release(vms=self.registry, net=self.net, vm_id=vm_id)
        self._notify()

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        """Remove resources of no live VM; one description per orphan removed."""
        removed = await cleanup.sweep(
            vms=self.registry,
            net=self.net,
            settings=self.settings,
            live_vm_ids=live_vm_ids,
            keep=[*self.templates.leases.values(), *self.spares.leases()],
        )
        if removed:
            self._notify()
        return removed

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                log.exception("on_change callback failed")
