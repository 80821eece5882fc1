"""``FirecrackerDriver``: the VmDriver that runs every runner in its own Firecracker microVM.

Start = preflight (binaries, images, disk space) -> state record -> tap + nft element -> CoW
rootfs -> (jail) -> supervisor + Firecracker in a new process group -> API calls in the
documented order -> ``InstanceStart``. A watcher task (every ``poll_interval``) turns the
supervisor's files into ``VmObservation``s, wipes the JIT config from MMDS once the guest agent
acknowledges it, escalates a graceful stop to SIGKILL after ``stop_grace_seconds`` and carries
out stops deferred by keep-on-failure. ``release`` and ``sweep`` live in ``cleanup.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import anyio

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import (
    api,
    cleanup,
    disks,
    jailer,
    markers,
    mmds,
    naming,
    network,
    proc,
    state,
    supervisor,
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
        self.settings = settings
        self.data_dir = data_dir
        self.vms_dir = data_dir / "vms"
        self.net: network.Network = net or network.HostNetwork(settings=settings)
        self.poll_interval = poll_interval
        self.records: dict[int, state.VmRecord] = {}
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._last: dict[int, driver.VmObservation] = {}
        self._slot_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle of the driver -------------------------------------------------------------

    async def open(self) -> None:
        """Adopt VMs recorded under ``<data_dir>/vms``, install our nft table, start watching."""
        self.vms_dir.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.vms_dir.iterdir()):
            record = state.VmRecord.load(entry)
            if record is not None:
                self.records[record.vm_id] = record
        await self.net.prepare([r.net for r in self.records.values()])
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="firecracker-watch")

    async def close(self) -> None:
        """Stop watching; VMs keep running and are adopted by the next ``open``."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` whenever an observation changes."""
        self._callbacks.append(callback)

    # -- start -----------------------------------------------------------------------------

    async def start(self, spec: driver.VmSpec) -> driver.VmObservation:
        """Boot a VM for ``spec`` (idempotent per vm_id). Raises VmStartError with the fix."""
        if spec.vm_id in self.records:
            return self._observe(self.records[spec.vm_id])
        async with self._slot_lock:
            self._preflight()
            record = self._new_record(spec)
            record.save()
            self.records[spec.vm_id] = record
        try:
            await self._provision(record, spec)
        except Exception as exc:
            detail = f"{spec.name}: {exc}"
            tail = state.tail(record.dir / supervisor.CONSOLE, 1500).strip()
            if tail:
                detail += f"\n--- console ---\n{tail}"
            record.detail = detail
            with contextlib.suppress(Exception):
                await cleanup.release(self, spec.vm_id)
            raise driver.VmStartError(detail) from exc
        record.phase = "running"
        record.save()
        self._notify()
        return self._observe(record)

    def _preflight(self) -> None:
        s = self.settings
        for label, path in (("firecracker_bin", s.firecracker_bin), ("jailer_bin", s.jailer_bin)):
            if path is not None and not os.access(path, os.X_OK):
                raise driver.VmStartError(
                    f"{label} {path} is missing or not executable: install Firecracker v1.16.x "
                    f"there or set [vm.firecracker] {label} (see `blacksmith-mini doctor`)"
                )
        for label, path in (("kernel_path", s.kernel_path), ("rootfs_path", s.rootfs_path)):
            if not path.is_file():
                raise driver.VmStartError(
                    f"{label} {path} does not exist: build the image with `blacksmith-mini image "
                    f"build` or set [vm.firecracker] {label}"
                )
        target = s.jailer.chroot_base_dir if s.jailer_bin else self.vms_dir
        try:
            disks.check_free_space(
                directory=target,
                needed_bytes=disks.strategy(s.rootfs_strategy).space_needed(s.rootfs_path),
                min_free_mib=s.min_free_disk_mib,
            )
        except disks.DiskError as exc:
            raise driver.VmStartError(str(exc)) from exc

    def _new_record(self, spec: driver.VmSpec) -> state.VmRecord:
        s = self.settings
        try:
            slot = naming.pick_slot(
                used=(r.net.slot for r in self.records.values()), slot_count=s.slot_count
            )
        except ValueError as exc:
            raise driver.VmStartError(str(exc)) from exc
        iid = naming.instance_id(vm_id=spec.vm_id, name=spec.name)
        netns = (
            network.namespace_name(tap_prefix=s.tap_prefix, instance_id=iid)
            if s.jailer_bin and s.jailer.netns
            else None
        )
        lease = naming.lease_for_slot(
            network_cidr=s.network_cidr, tap_prefix=s.tap_prefix, slot=slot, netns=netns
        )
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
            lease=_lease_dict(lease),
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
        lease = record.net
        await self.net.add_vm(lease, uid=record.uid, gid=record.gid)
        jail = self._jail(record) if s.jailer_bin else None
        if jail is not None:
            await anyio.to_thread.run_sync(lambda: jailer.prepare(jail, kernel=s.kernel_path))
        rootfs = Path(record.rootfs)
        strategy = disks.strategy(s.rootfs_strategy)
        try:
            await anyio.to_thread.run_sync(lambda: strategy.clone(src=s.rootfs_path, dst=rootfs))
        except disks.DiskError as exc:
            raise driver.VmStartError(str(exc)) from exc
        if jail is not None:
            jailer.own(jail, rootfs)
        Path(record.socket).unlink(missing_ok=True)
        self._spawn(record, jail)
        store = mmds.boot_data(
            spec,
            instance_id=record.instance_id,
            ssh_public_key=self._ssh_key(),
            keep_on_failure_seconds=s.keep_on_failure_minutes * 60,
        )
        record.public_mmds = mmds.public_remainder(store)
        record.save()
        client = api.FirecrackerApi(socket_path=Path(record.socket), timeout=s.api_timeout)
        try:
            await self._configure(client, record=record, store=store, jail=jail)
        finally:
            await client.aclose()

    def _ssh_key(self) -> str | None:
        path = self.settings.ssh_public_key_path
        return path.read_text().strip() if path else None

    def _spawn(self, record: state.VmRecord, jail: jailer.JailPlan | None) -> None:
        if jail is not None:
            command = list(jail.argv)
        else:
            command = [
                str(self.settings.firecracker_bin),
                "--api-sock",
                record.socket,
                "--id",
                record.instance_id,
            ]
        argv = [
            sys.executable,
            "-m",
            "blacksmith_mini.vm.firecracker.supervisor",
            "--state-dir",
            record.state_dir,
            "--max-bytes",
            str(self.settings.console_max_bytes),
            "--",
            *command,
        ]
        with (record.dir / "supervisor.log").open("ab") as errors:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
                cwd=record.state_dir,
                start_new_session=True,
                close_fds=True,
            )
        self._children[record.vm_id] = child
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

    # -- stop ------------------------------------------------------------------------------

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        """Graceful: SendCtrlAltDel, SIGKILL after the grace period. Force: SIGKILL now."""
        record = self.records.get(vm_id)
        if record is None or not self.vm_alive(record):
            return
        now = time.time()
        if force:
            self._kill(record)
            await self.await_death(record, timeout=2.0)
        elif record.keep_until is not None and now < record.keep_until:
            record.stop_requested_at = record.keep_until  # carried out by the watcher
            record.save()
            return
        elif record.stop_requested_at is None:
            record.stop_requested_at = now
            record.save()
            try:
                await self._send_ctrl_alt_del(record)
            except api.FirecrackerApiError as exc:
                log.warning("vm %s: graceful stop failed (%s), killing", record.name, exc)
                self._kill(record)
        self._notify()

    async def _send_ctrl_alt_del(self, record: state.VmRecord) -> None:
        client = api.FirecrackerApi(
            socket_path=Path(record.socket), timeout=self.settings.api_timeout
        )
        try:
            await client.send_ctrl_alt_del()
        finally:
            await client.aclose()

    def _kill(self, record: state.VmRecord) -> None:
        if record.supervisor_pid is not None and self.vm_alive(record):
            proc.kill_group(record.supervisor_pid, signal.SIGKILL)  # supervisor is group leader
            record.kill_sent_at = time.time()
            record.save()
        self._reap(record.vm_id)

    async def await_death(self, record: state.VmRecord, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.vm_alive(record) and time.monotonic() < deadline:
            await anyio.sleep(0.02)

    def _reap(self, vm_id: int) -> None:
        child = self._children.get(vm_id)
        if child is not None and child.poll() is not None:
            del self._children[vm_id]

    def vm_alive(self, record: state.VmRecord) -> bool:
        """The supervisor or Firecracker itself still runs (checked against pid reuse)."""
        self._reap(record.vm_id)
        if proc.is_alive(record.supervisor_pid, record.supervisor_ticks):
            return True
        child = state.read_child_pid(record.dir)
        return (
            child is not None
            and proc.is_alive(child, None)
            and record.instance_id in " ".join(proc.cmdline(child))
        )

    # -- observe ---------------------------------------------------------------------------

    async def observe(self) -> Mapping[int, driver.VmObservation]:
        """Every VM we hold resources for, alive or exited."""
        return {vm_id: self._observe(r) for vm_id, r in self.records.items()}

    def _observe(self, record: state.VmRecord) -> driver.VmObservation:
        events = state.read_events(record.dir)
        exited = state.read_exit(record.dir)
        alive = self.vm_alive(record)
        exit_code = exit_signal = ended_at = None
        if not alive:
            if exited is not None:
                exit_code, exit_signal = exited.get("exit_code"), exited.get("exit_signal")
                ended_at = exited.get("time")
            elif record.kill_sent_at is not None:
                exit_signal, ended_at = int(signal.SIGKILL), record.kill_sent_at
            elif record.phase != "starting":
                record.detail = record.detail or "the VM's supervisor vanished"
        detail = record.detail
        if record.keep_until is not None and alive:
            detail = f"kept for debugging until {time.ctime(record.keep_until)}"
        finished = events.get(markers.JOB_FINISHED)
        return driver.VmObservation(
            vm_id=record.vm_id,
            name=record.name,
            alive=alive,
            started_at=record.started_at,
            pid=state.read_child_pid(record.dir) or record.supervisor_pid,
            ip=record.net.guest_ip,
            runner_online=markers.RUNNER_ONLINE in events,
            job_started=markers.JOB_STARTED in events,
            job_finished=finished is not None,
            exit_code=exit_code,
            exit_signal=exit_signal,
            ended_at=ended_at,
            detail=detail,
        )

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        """The end of the VM's serial console."""
        record = self.records.get(vm_id)
        return state.tail(record.dir / supervisor.CONSOLE, max_bytes) if record else ""

    # -- release / sweep (cleanup.py) ------------------------------------------------------

    async def release(self, vm_id: int) -> None:
        """Free everything the VM holds, in order: nft, tap, jail/cgroup, disk, state dir."""
        await cleanup.release(self, vm_id)
        self._notify()

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        """Remove resources of no live VM; one description per orphan removed."""
        removed = await cleanup.sweep(self, live_vm_ids)
        if removed:
            self._notify()
        return removed

    # -- watcher ---------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("firecracker watcher tick failed")
            await anyio.sleep(self.poll_interval)

    async def tick(self) -> None:
        """One watcher pass (public so tests can drive it without waiting)."""
        now = time.time()
        for record in list(self.records.values()):
            if record.phase == "starting":
                continue
            events = state.read_events(record.dir)
            alive = self.vm_alive(record)
            if alive and not record.mmds_wiped and markers.BOOT_DATA_READ_EVENT in events:
                await self._wipe_mmds(record)
            finished = events.get(markers.JOB_FINISHED)
            if (
                finished is not None
                and record.keep_until is None
                and self.settings.keep_on_failure_minutes > 0
                and finished.get("detail") != "Succeeded"
            ):
                record.keep_until = (
                    float(finished["time"]) + self.settings.keep_on_failure_minutes * 60
                )
                record.save()
            if alive and record.stop_requested_at is not None and record.kill_sent_at is None:
                await self._escalate(record, now=now)
        changed = False
        for vm_id, record in list(self.records.items()):
            current = self._observe(record)
            if self._last.get(vm_id) != current:
                self._last[vm_id] = current
                changed = True
        if changed:
            self._notify()

    async def _wipe_mmds(self, record: state.VmRecord) -> None:
        client = api.FirecrackerApi(
            socket_path=Path(record.socket), timeout=self.settings.api_timeout
        )
        try:
            await client.put_mmds(record.public_mmds)
            record.mmds_wiped = True
            record.save()
        except api.FirecrackerApiError as exc:
            log.warning("vm %s: wiping MMDS failed: %s", record.name, exc)
        finally:
            await client.aclose()

    async def _escalate(self, record: state.VmRecord, *, now: float) -> None:
        assert record.stop_requested_at is not None
        if record.keep_until is not None and record.stop_requested_at == record.keep_until:
            if now < record.keep_until:
                return
            record.keep_until = None  # the keep window is over: stop for real
            record.stop_requested_at = now
            record.save()
            try:
                await self._send_ctrl_alt_del(record)
            except api.FirecrackerApiError:
                self._kill(record)
            return
        if now - record.stop_requested_at >= self.settings.stop_grace_seconds:
            log.info(
                "vm %s: no exit %.0fs after SendCtrlAltDel, killing",
                record.name,
                self.settings.stop_grace_seconds,
            )
            self._kill(record)

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback()
            except Exception:
                log.exception("on_change callback failed")


def _lease_dict(lease: naming.NetLease) -> dict[str, object]:
    return {
        "slot": lease.slot,
        "tap": lease.tap,
        "host_ip": lease.host_ip,
        "guest_ip": lease.guest_ip,
        "prefixlen": lease.prefixlen,
        "mac": lease.mac,
        "netns": lease.netns,
    }
