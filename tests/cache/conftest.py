"""Fixtures for the cache: a service on a temporary directory, its ASGI client, and tokens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import pytest

from blacksmith_mini.cache import scope, tokens
from blacksmith_mini.cache.app import create_cache_app
from blacksmith_mini.cache.service import CacheConfig, CacheService
from blacksmith_mini.cache.store import Limits

SECRET = b"test-secret-for-the-cache-0123456789"
ADMIN = "admin-token-for-the-cache-tests"
REPO = "acme/widgets"


def mint(
    *,
    repository: str = REPO,
    ref: str = "refs/heads/main",
    base: str | None = None,
    default: str = "main",
    mode: str | None = None,
    vm: str = "vm-1",
    secret: bytes = SECRET,
) -> str:
    """A token the control plane would mint for a job on ``ref``."""
    found = scope.apply_mode(scope.own_scopes(ref=ref, default_branch=default, base_ref=base), mode)
    claim = tokens.Claim(
        repository=repository,
        write=found.write,
        reads=found.reads,
        expires_at=int(time.time()) + 3600,
        vm_id=vm,
    )
    return tokens.mint(secret, claim)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


ADMIN_HEADERS = bearer(ADMIN)


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
def service(tmp_path: Path, limits: Limits) -> Iterator[CacheService]:
    found = CacheService(CacheConfig(directory=tmp_path / "cache", limits=limits), secret=SECRET)
    yield found
    found.close()


@pytest.fixture
async def client(service: CacheService) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_cache_app(service, admin_token=ADMIN)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://cache.test") as found:
        yield found
