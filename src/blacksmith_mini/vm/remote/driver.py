"""The ``remote`` driver: the control plane's side of the host agents, a ``VmDriver``.

The loop calls it like any driver; it turns calls into commands persisted for the VM's host
(``store.hosts``) and reads the hosts' reports back, so the loop does not care where a VM runs:

- ``start`` persists a ``start`` command keyed ``start:<vm_id>:<attempt>`` (its payload carries
  the JIT config, wiped once acknowledged) and waits for the agent's acknowledgement, which
  arrives in the same message as the agent's observation of the new VM. No acknowledgement in
  ``ack_timeout`` seconds is a failed start; the command stays queued and the ``release`` the
  loop sends next undoes it if the agent carries it out late.
- ``stop``/``release`` persist commands and return (the agent carries them out in order).
- ``observe`` reads every host in one query. A host whose last heartbeat is older than the
  lease is down: it is recorded once (an event names it) and its VMs are reported
  ``host_lost`` so the planner writes them off. A host's observations are turned into
  ``VmObservation``s again only when they changed since the last ``observe`` (at 10,000 VMs
  that conversion was most of a tick's reading).

Clocks: heartbeats are stamped by the replica that receives them and judged by the leader,
so replicas' clocks must agree to well within the lease (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from blacksmith_mini.domain import model, placement
from blacksmith_mini.domain.hostbook import HostCommand, HostRecord, lapsed, placement_host
from blacksmith_mini.domain.hostset import HostPlan
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.vm.remote import wakeups as wake
from blacksmith_mini.vm.remote import wire

log = logging.getLogger(__name__)
DEFAULT_LEASE_SECONDS = 15.0
CONSOLE_TIMEOUT_SECONDS = 2.0


class HostBook(Protocol):
    """The store's part the remote driver uses (``store.repository.Store`` has it)."""

    async def host(self, name: str) -> HostRecord | None: ...

    async def hosts(self) -> list[HostRecord]: ...

    async def mark_down(self, name: str, *, reason: str, now: float) -> bool: ...

    async def add_event(
        self,
        *,
        kind: str,
        message: str,
        at: float,
        vm_id: int | None = None,
        job_id: int | None = None,
        actor: str = "system",
    ) -> None: ...

    async def enqueue_command(
        self,
        host: str,
        *,
        kind: str,
        vm_id: int,
        key: str,
        payload: Mapping[str, Any],
        now: float,
    ) -> HostCommand: ...

    async def command_by_key(self, key: str) -> HostCommand | None: ...

    async def count_commands(self, *, kind: str, vm_id: int) -> int: ...

    async def vm(self, vm_id: int) -> model.Vm | None: ...


class RemoteDriver:
    """VMs on hosts run by agents, through persisted commands."""

    name = "remote"

    def __init__(
        self,
        *,
        store: HostBook,
        wakeups: wake.Wakeups,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        ack_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.wakeups = wakeups
        self.lease_seconds = lease_seconds
        self.ack_timeout = ack_timeout
        self.clock = clock
        self._host_of: dict[int, str] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._watch: asyncio.Task[None] | None = None
        self.last_hosts: list[HostRecord] = []  # as the last ``observe`` read them
        # host -> (its observations as last read, them converted): reused while unchanged
        self._converted: dict[str, tuple[Mapping[str, Any], dict[int, vm_driver.VmObservation]]]
        self._converted = {}

    async def open(self) -> None:
        if self._watch is None:
            self._watch = asyncio.create_task(self._relay_reports(), name="remote-reports")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    async def _relay_reports(self) -> None:
        seen = self.wakeups.counter(wake.CHANGES)
        while True:
            before = seen
            seen = await self.wakeups.wait(wake.CHANGES, after=seen, timeout=5.0)
            if seen == before:
                continue  # a quiet heartbeat: the loop's own timer is enough
            for callback in self._callbacks:
                callback()

    # --- starting --------------------------------------------------------------------------

    async def preflight(self, spec: vm_driver.VmSpec) -> None:
        if spec.host is None:
            raise vm_driver.VmStartError(
                f"no host was chosen for VM {spec.vm_id}: add one with "
                "`blacksmith-mini host add NAME` and start `blacksmith-mini agent` on it"
            )
        host = await self.store.host(spec.host)
        if host is None or host.revoked_at is not None:
            raise vm_driver.VmStartError(
                f"host {spec.host} is not registered (or its token was revoked): "
                "`blacksmith-mini host list` shows the hosts"
            )
        if lapsed(host, now=self.clock(), lease_seconds=self.lease_seconds):
            raise vm_driver.VmStartError(
                f"host {spec.host} is down (no heartbeat for over {self.lease_seconds:g} s): "
                "check its agent (`systemctl status blacksmith-mini-agent`)"
            )
        if host.admin_state != "up":
            raise vm_driver.VmStartError(f"host {spec.host} is {host.admin_state}: it takes no VMs")

    async def start(self, spec: vm_driver.VmSpec) -> vm_driver.VmObservation:
        await self.preflight(spec)
        assert spec.host is not None
        attempt = await self.store.count_commands(kind="start", vm_id=spec.vm_id) + 1
        command = await self._send(
            spec.host,
            kind="start",
            vm_id=spec.vm_id,
            key=f"start:{spec.vm_id}:{attempt}",
            payload=wire.spec_payload(spec),
        )
        result = await self._await_ack(command.key, timeout=self.ack_timeout)
        if result is None:
            raise vm_driver.VmStartError(
                f"host {spec.host} did not acknowledge the start of VM {spec.vm_id} within "
                f"{self.ack_timeout:g} s; check its agent and the network between them"
            )
        if not result.get("ok"):
            raise vm_driver.VmStartError(f"on host {spec.host}: {result.get('error')}")
        seen = result.get("observation")
        if not isinstance(seen, dict):
            raise vm_driver.VmStartError(f"host {spec.host} acknowledged the start without a VM")
        return wire.observation_from_wire(seen)

    # --- stopping and releasing ------------------------------------------------------------

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        host = await self._host(vm_id)
        if host is None:
            return
        kind = "kill" if force else "stop"
        await self._send(host, kind=kind, vm_id=vm_id, key=f"{kind}:{vm_id}", payload={})

    async def release(self, vm_id: int) -> None:
        host = await self._host(vm_id)
        if host is None:
            return
        await self._send(host, kind="release", vm_id=vm_id, key=f"release:{vm_id}", payload={})

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        live = set(live_vm_ids)
        removed: list[str] = []
        for host in await self.store.hosts():
            for vm_id in sorted(int(key) for key in host.observations if int(key) not in live):
                await self._send(
                    host.name, kind="kill", vm_id=vm_id, key=f"kill:{vm_id}", payload={}
                )
                await self.release_on(host.name, vm_id)
                removed.append(f"VM {vm_id} on host {host.name} belongs to no active VM: removed")
        return removed

    async def release_on(self, host: str, vm_id: int) -> None:
        await self._send(host, kind="release", vm_id=vm_id, key=f"release:{vm_id}", payload={})

    # --- observing -------------------------------------------------------------------------

    async def observe(self) -> Mapping[int, vm_driver.VmObservation]:
        now = self.clock()
        found: dict[int, vm_driver.VmObservation] = {}
        self.last_hosts = await self.store.hosts()
        converted = {host.name: self._convert(host) for host in self.last_hosts}
        self._converted = converted
        for host in self.last_hosts:
            seen = converted[host.name][1]
            self._host_of.update(dict.fromkeys(seen, host.name))
            if not lapsed(host, now=now, lease_seconds=self.lease_seconds):
                found.update(seen)
                continue
            if host.last_seen is not None and host.down_since is None:
                await self._record_down(host, now=now)
            detail = f"host {host.name} lost: no heartbeat for over {self.lease_seconds:g} s"
            for vm_id, one in seen.items():
                found[vm_id] = dataclasses.replace(one, alive=False, host_lost=True, detail=detail)
        return found

    def _convert(
        self, host: HostRecord
    ) -> tuple[Mapping[str, Any], dict[int, vm_driver.VmObservation]]:
        """``host``'s observations as ``VmObservation``s, by VM id: the last ones if equal, and
        a VM's last one while its observation is (a report changes a few VMs of a hundred, and
        the loop's facts are reused for an observation it saw before: ``LoopState``)."""
        last = self._converted.get(host.name)
        if last is not None and last[0] == host.observations:
            return last
        raws, before = last if last is not None else ({}, {})
        seen = {}
        for key, raw in host.observations.items():
            vm_id = int(key)
            kept = before.get(vm_id)
            was = raws.get(key)
            reuse = kept is not None and (was is raw or was == raw)  # most: the same object
            seen[vm_id] = kept if reuse and kept is not None else wire.observation_from_wire(raw)
        return host.observations, seen

    def host_plan(
        self,
        *,
        strategy: placement.Strategy = placement.Strategy.SPREAD,
        overcommit: placement.Overcommit | None = None,
        vm_disk_mib: int = 0,
        weights: Mapping[str, float] | None = None,
    ) -> HostPlan:
        """The hosts as the last ``observe`` saw them, for placement."""
        now = self.clock()
        return HostPlan(
            hosts=tuple(
                placement_host(host, now=now, lease_seconds=self.lease_seconds)
                for host in self.last_hosts
            ),
            strategy=strategy,
            overcommit=overcommit or placement.Overcommit(),
            vm_disk_mib=vm_disk_mib,
            weights=dict(weights or {}),
            last_seen={h.name: h.last_seen for h in self.last_hosts if h.last_seen is not None},
        )

    async def _record_down(self, host: HostRecord, *, now: float) -> None:
        reason = f"no heartbeat for {now - (host.last_seen or now):.0f} s"
        if await self.store.mark_down(host.name, reason=reason, now=now):
            vms = len(host.observations)
            message = f"host {host.name} is down ({reason}); its {vms} VM(s) are written off"
            log.warning("%s", message)
            await self.store.add_event(kind="host.down", message=message, at=now)

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        host = await self._host(vm_id)
        record = await self.store.host(host) if host is not None else None
        if record is None or lapsed(record, now=self.clock(), lease_seconds=self.lease_seconds):
            return ""  # a down host cannot answer: do not make the caller wait
        if str(vm_id) not in record.observations:
            return ""  # released (or never started) there: nothing to read
        key = f"console:{vm_id}:{secrets.token_hex(4)}"
        await self._send(
            record.name, kind="console", vm_id=vm_id, key=key, payload={"max_bytes": max_bytes}
        )
        result = await self._await_ack(key, timeout=CONSOLE_TIMEOUT_SECONDS)
        return str(result.get("output") or "") if result else ""

    # --- helpers ---------------------------------------------------------------------------

    async def _host(self, vm_id: int) -> str | None:
        if vm_id in self._host_of:
            return self._host_of[vm_id]
        vm = await self.store.vm(vm_id)
        if vm is not None and vm.host is not None:
            self._host_of[vm_id] = vm.host
        return vm.host if vm is not None else None

    async def _send(
        self, host: str, *, kind: str, vm_id: int, key: str, payload: dict[str, Any]
    ) -> HostCommand:
        self._host_of[vm_id] = host
        command = await self.store.enqueue_command(
            host, kind=kind, vm_id=vm_id, key=key, payload=payload, now=self.clock()
        )
        self.wakeups.publish(wake.COMMANDS)
        return command

    async def _await_ack(self, key: str, *, timeout: float) -> Mapping[str, Any] | None:
        deadline = time.monotonic() + timeout
        seen = self.wakeups.counter(wake.REPORTS)
        while True:
            command = await self.store.command_by_key(key)
            if command is not None and command.acked_at is not None:
                return command.result or {}
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            seen = await self.wakeups.wait(wake.REPORTS, after=seen, timeout=min(left, 0.5))
