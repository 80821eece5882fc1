"""Stores for the hosts benchmarks: SQLite in a temporary directory, or a fresh schema of the
PostgreSQL test database; seeded with 100 hosts, their agents' reports and N VMs."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import pathlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import hosts_world
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from blacksmith_mini.domain import placement as pl
from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.store import repository, tables
from blacksmith_mini.vm.remote import wire

PG_URL = os.environ.get(
    "BLACKSMITH_TEST_DATABASE_URL",
    "postgresql://blacksmith:blacksmith@127.0.0.1:5432/blacksmith_test",
)


async def postgres_reachable() -> bool:
    probe = create_async_engine(engine_mod.normalize_url(PG_URL))
    try:
        async with probe.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means: skip PostgreSQL
        return False
    finally:
        await probe.dispose()


@contextlib.asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A schema of its own in the test database, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(engine_mod.normalize_url(PG_URL))
    async with admin.begin() as connection:
        await connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await admin.dispose()


@contextlib.contextmanager
def engines_in(schema: str, *, application_name: str) -> Iterator[None]:
    """Every store engine made meanwhile uses ``schema`` and names its connections (so the
    bench can find its PostgreSQL backends); the pool and timeouts are the real ones."""
    made = engine_mod.create_engine

    def create(url: str, *, search_path: str | None = None) -> Any:
        assert search_path is None  # the store's own engines never pass one
        return create_async_engine(
            engine_mod.normalize_url(url),
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            connect_args={"server_settings": _server_settings(schema, application_name)},
        )

    engine_mod.create_engine = create
    try:
        yield
    finally:
        engine_mod.create_engine = made


def _server_settings(schema: str, application_name: str) -> dict[str, str]:
    return {
        "idle_in_transaction_session_timeout": "5000",
        "tcp_keepalives_idle": "5",
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
        "search_path": schema,
        "application_name": application_name,
    }


@dataclasses.dataclass(frozen=True)
class Seeded:
    tokens: dict[str, str]  # host -> its agent's token
    observations: dict[str, dict[str, Any]]  # host -> its agent's observations, by VM id
    sessions: dict[str, int]  # host -> its agent's session (after hello)


def sqlite_store(directory: pathlib.Path) -> repository.Store:
    return repository.Store(engine_mod.sqlite_url(directory))


def observations_by_host(rows: list[dict[str, Any]], *, now: float) -> dict[str, dict[str, Any]]:
    """Each host's observations as its agent sends them and ``hello`` stores them: every field
    of ``wire.Observation`` (the agent dumps them all), so a report that says the same as the
    hello matches what is stored."""
    found: dict[str, dict[str, Any]] = collections.defaultdict(dict)
    for row in rows:
        seen = hosts_world.observation(row["vm_id"], busy=row["state"] == "busy", now=now)
        found[row["host"]][str(row["vm_id"])] = wire.Observation(**seen).model_dump(mode="json")
    return found


async def seed(
    store: repository.Store,
    *,
    hosts: list[pl.Host],
    vms: int,
    now: float,
    hello: bool = True,
    idle: bool = True,
) -> Seeded:
    """Add ``hosts``, ``vms`` VM rows spread over them (``idle=False``: all busy), and
    (``hello``) each host's agent's hello with its VMs' observations."""
    tokens = {host.name: await store.add_host(host.name, now=now) for host in hosts}
    rows = hosts_world.vm_rows(hosts_=hosts, vms=vms, now=now, idle=idle)
    async with store.engine.begin() as connection:
        for start in range(0, len(rows), 2_000):
            await connection.execute(insert(tables.VmRow), rows[start : start + 2_000])
    seen = observations_by_host(rows, now=now)
    sessions: dict[str, int] = {}
    if hello:
        for host in hosts:
            report = hosts_world.report(host)
            sessions[host.name] = await store.hello(
                host.name, report=report, observations=seen[host.name], now=now
            )
    return Seeded(tokens=tokens, observations=seen, sessions=sessions)


def backend_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these (PostgreSQL backend) processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


async def backends_named(application_name: str) -> list[int]:
    probe = create_async_engine(engine_mod.normalize_url(PG_URL))
    try:
        async with probe.connect() as connection:
            rows = await connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            )
            return [int(row[0]) for row in rows]
    finally:
        await probe.dispose()
