"""The store suite runs on SQLite always and on PostgreSQL when a URL is given.

Set ``BLACKSMITH_TEST_DATABASE_URL`` (``.ci/run`` does, after starting a local PostgreSQL);
without it the PostgreSQL cases are skipped with a message saying so.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from blacksmith_mini.store import engine, repository

PG_URL = os.environ.get("BLACKSMITH_TEST_DATABASE_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[repository.Store]:
    if request.param == "sqlite":
        found = repository.Store(engine.sqlite_url(tmp_path))
        await found.open()
        yield found
        await found.close()
        return
    if not PG_URL:
        pytest.skip("PostgreSQL store tests need BLACKSMITH_TEST_DATABASE_URL (.ci/run sets it)")
    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(engine.normalize_url(PG_URL))
    async with admin.begin() as connection:
        await connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = engine.normalize_url(PG_URL)
    found = repository.Store(url, search_path=schema)
    await found.open()
    yield found
    await found.close()
    async with admin.begin() as connection:
        await connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    await admin.dispose()
