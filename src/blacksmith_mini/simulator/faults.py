"""Fault injection for simulate mode: a driver wrapper that fails some VM starts (the
simulated GitHub's faults are set through ``POST /_sim/faults``, in ``github_api``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from blacksmith_mini.vm import driver


class FlakyDriver:
    """Wraps a driver; every ``every``-th ``start`` fails as a real start failure would."""

    def __init__(self, inner: driver.VmDriver, *, every: int) -> None:
        self.inner = inner
        self.every = every
        self.starts = 0
        self.name = inner.name

    async def open(self) -> None:
        await self.inner.open()

    async def preflight(self, spec: driver.VmSpec) -> None:
        await self.inner.preflight(spec)

    async def start(self, spec: driver.VmSpec) -> driver.VmObservation:
        self.starts += 1
        if self.every and self.starts % self.every == 0:
            raise driver.VmStartError(
                f"injected fault: start {self.starts} of VM {spec.vm_id} fails "
                f"(simulator.vm_start_failure_every = {self.every})"
            )
        return await self.inner.start(spec)

    async def stop(self, vm_id: int, *, force: bool = False) -> None:
        await self.inner.stop(vm_id, force=force)

    async def observe(self) -> Mapping[int, driver.VmObservation]:
        return await self.inner.observe()

    async def release(self, vm_id: int) -> None:
        await self.inner.release(vm_id)

    async def sweep(self, live_vm_ids: Sequence[int]) -> list[str]:
        return await self.inner.sweep(live_vm_ids)

    async def console_tail(self, vm_id: int, *, max_bytes: int = 16384) -> str:
        return await self.inner.console_tail(vm_id, max_bytes=max_bytes)

    def on_change(self, callback: Callable[[], None]) -> None:
        self.inner.on_change(callback)

    async def close(self) -> None:
        await self.inner.close()
