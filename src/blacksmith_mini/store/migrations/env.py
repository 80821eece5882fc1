"""Alembic environment. Migrations run on a connection handed in by ``store.engine.migrate``."""

from __future__ import annotations

from alembic import context

from blacksmith_mini.store import tables

target_metadata = tables.Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
