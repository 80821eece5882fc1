"""One VM network wired ahead of the next start (snapshot mode), so a start does not wait for
its namespace, veth, NAT table and nftables element (``network``): about 80 ms on a host,
against 30 ms for a plain tap (``bench/clone_network_bench.py``).

The spare is the lowest free slot's network, named by the slot (``network.lease_for``), wired
in the background after each start; a start takes it when it is ready and wires its own
otherwise. Its slot counts as used, its network is kept from sweeps, and ``close`` removes it
(a crash leaves it to the next open's sweep, like any orphan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import anyio

from blacksmith_mini.vm.firecracker import naming, network
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

log = logging.getLogger(__name__)


class Spares:
    """The driver's spare network: ``take`` at a start, ``refill`` after it."""

    def __init__(self, *, settings: FirecrackerSettings, net: network.Network) -> None:
        self.settings = settings
        self.net = net
        self.ready: naming.NetLease | None = None
        self.wiring: naming.NetLease | None = None
        self._task: asyncio.Task[None] | None = None

    def leases(self) -> list[naming.NetLease]:
        """The spare's network, ready or being wired (kept from sweeps, slots taken)."""
        return [lease for lease in (self.ready, self.wiring) if lease is not None]

    def take(self) -> naming.NetLease | None:
        """The wired spare, now the caller's (None when there is none ready)."""
        found, self.ready = self.ready, None
        return found

    def refill(self, used: set[int]) -> None:
        """Wire a spare on the lowest slot not in ``used``, in the background, unless one is
        ready or being wired (or snapshots are off, or no slot is free)."""
        if not network.routed(self.settings) or self.ready is not None or self._task is not None:
            return
        free = sorted(set(range(self.settings.slot_count)) - used)
        if not free:
            return
        lease = network.lease_for(self.settings, slot=free[0], instance_id="spare")
        self.wiring = lease
        self._task = asyncio.create_task(self._wire(lease), name=f"spare-network-{lease.slot}")

    async def _wire(self, lease: naming.NetLease) -> None:
        try:
            await self.net.add_vm(lease, uid=None, gid=None)
        except Exception as exc:  # the next start wires its own and says why if it fails too
            log.warning("spare VM network on slot %s: %s", lease.slot, exc)
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.net.remove_vm(lease)
        else:
            self.ready = lease
        finally:
            self.wiring = None
            self._task = None

    async def close(self) -> None:
        """Stop wiring and remove the spare's network."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        spare, self.ready = self.ready, None
        if spare is not None:
            with contextlib.suppress(Exception):
                await self.net.remove_vm(spare)
