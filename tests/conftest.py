"""Shared fixtures: the anyio backend and a few builders."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
