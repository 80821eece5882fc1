"""Engine creation (SQLite pragmas, PostgreSQL) and running the Alembic migrations."""

from __future__ import annotations

import pathlib
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = pathlib.Path(__file__).parent / "migrations"


def sqlite_url(data_dir: pathlib.Path) -> str:
    return f"sqlite+aiosqlite:///{data_dir / 'blacksmith.db'}"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``sqlite://`` URLs and pick the async drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.split(":///", 1)[1]
    return url


def create_engine(url: str, *, search_path: str | None = None) -> AsyncEngine:
    """An async engine; ``search_path`` picks a PostgreSQL schema (used by tests)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # A leader cut off mid-transaction must not hold its locks (the lease row's share lock
    # among them) until TCP gives up hours later: PostgreSQL ends idle transactions after 5 s
    # and probes the client's socket every few seconds.
    server_settings = {
        "idle_in_transaction_session_timeout": "5000",
        "tcp_keepalives_idle": "5",
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
    }
    if search_path:
        server_settings["search_path"] = search_path
    connect_args = {"server_settings": server_settings}
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, connect_args=connect_args
    )


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the latest revision (idempotent)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
