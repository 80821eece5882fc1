"""Database statements per tick: ``Reconciler.tick()`` with a ``RemoteDriver`` over 100 hosts.

The store (SQLite) is seeded with 100 hosts, their agents' hellos (each with its VMs'
observations) and N active VMs (4 in 5 busy); the loop adopts them at start-up (GitHub is
``tests/control/fakes.FakeGitHub``: nothing queued) and ticks in steady state. Every SQL
statement the store's engine sends (``before_cursor_execute``) is counted, per tick, at 1,000
and 10,000 VMs: the count must not grow with the VMs. Each tick's CPU time is shown too.
"""

from __future__ import annotations

import dataclasses
import pathlib
import statistics
import sys
import time
from typing import Any

import hosts_seed
import hosts_world
import synthetic
from sqlalchemy import event

from blacksmith_mini.control import reconciler
from blacksmith_mini.domain import model
from blacksmith_mini.domain import placement as pl
from blacksmith_mini.store import repository
from blacksmith_mini.vm.remote import driver as remote
from blacksmith_mini.vm.remote import wakeups

sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "tests"))

from control import fakes  # the tests' fake GitHub

TICKS = 4
LEASE_SECONDS = 3_600.0  # a bench pauses; hosts must not lapse meanwhile


@dataclasses.dataclass(frozen=True)
class Result:
    vms: int
    first_tick: int  # statements in the first tick (samples and retention run then)
    per_tick: list[int]  # statements in each later tick
    tick_cpu_ms: float  # median CPU of a later tick
    actions: int  # actions the later ticks performed (steady state: none)
    seeded_at: float  # the store's clock when seeded (its hosts' last heartbeat)


async def seeded_store(directory: pathlib.Path, *, vms: int, now: float) -> repository.Store:
    """A SQLite store in ``directory`` with 100 up hosts, their hellos and ``vms`` VMs."""
    store = hosts_seed.sqlite_store(directory)
    await store.open()
    hosts = [dataclasses.replace(h, state=pl.HostState.UP) for h in hosts_world.hosts()]
    await hosts_seed.seed(store, hosts=hosts, vms=vms, now=now)
    return store


def loop_over(store: repository.Store, *, clock: Any) -> reconciler.Reconciler:
    """The real loop with the remote driver over ``store``'s hosts, as ``runtime`` builds it."""
    driver = remote.RemoteDriver(
        store=store, wakeups=wakeups.LocalWakeups(), lease_seconds=LEASE_SECONDS, clock=clock
    )
    pools = tuple(dataclasses.replace(pool, min_idle=0) for pool in synthetic.POOLS)
    policy = model.Policy(max_vms=hosts_world.UNLIMITED, pools=pools, scopes=synthetic.SCOPES)
    return reconciler.Reconciler(
        policy=policy,
        store=store,
        github=fakes.FakeGitHub(),
        driver=driver,
        config=reconciler.LoopConfig(github_poll_interval=3_600.0),
        clock=clock,
        host_plan=lambda: driver.host_plan(
            overcommit=hosts_world.OVERCOMMIT, vm_disk_mib=hosts_world.VM_DISK_MIB
        ),
    )


async def measure(directory: pathlib.Path, *, vms: int) -> Result:
    seeded_at = time.time()
    store = await seeded_store(directory, vms=vms, now=seeded_at)
    clock = fakes.Clock(seeded_at)
    loop = loop_over(store, clock=clock)
    await loop.start(background=False)
    assert len(loop.state.vms) == vms, "the loop adopts every seeded VM"
    counted: list[int] = [0]

    def count(*_: Any) -> None:
        counted[0] += 1

    performed: list[str] = []
    perform = loop.acts.perform

    async def counted_perform(action: Any, **more: Any) -> None:
        performed.append(type(action).__name__)
        await perform(action, **more)

    loop.acts.perform = counted_perform  # type: ignore[method-assign]
    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    per_tick, cpu = [], []
    for tick in range(TICKS + 1):
        if tick == 1:
            performed.clear()
        counted[0] = 0
        started = time.process_time()
        await loop.tick()
        loop.publish(clock())
        cpu.append((time.process_time() - started) * 1000)
        per_tick.append(counted[0])
        clock.advance(1.0)
    event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    assert len(loop.state.vms) == vms, "steady state: no VM was lost"
    await loop.stop()
    await store.close()
    return Result(
        vms=vms,
        first_tick=per_tick[0],
        per_tick=per_tick[1:],
        tick_cpu_ms=statistics.median(cpu[1:]),
        actions=len(performed),
        seeded_at=seeded_at,
    )


def show(results: list[Result]) -> list[str]:
    lines = [
        f"{'statements per tick (SQLite)':<30} {'1st tick':>8} {'later ticks':>14} "
        f"{'tick cpu ms':>11} {'actions':>7}"
    ]
    for found in results:
        later = " ".join(str(n) for n in found.per_tick)
        lines.append(
            f"{f'{found.vms:,} VMs, 100 hosts':<30} {found.first_tick:>8} {later:>14} "
            f"{found.tick_cpu_ms:>11.1f} {found.actions:>7}"
        )
    counts = {tuple(found.per_tick) for found in results}
    verdict = "bounded: the same at every size" if len(counts) == 1 else "DIFFERS with the VMs"
    lines.append(f"statements per later tick: {verdict}")
    return lines
