"""Operators' routes: list and delete entries, see uploads, read the metrics, scrub."""

from __future__ import annotations

import httpx2
import pytest

from blacksmith_mini.cache.service import CacheService
from blacksmith_mini.cache.store import Limits

from .conftest import ADMIN_HEADERS, mint
from .test_http_v2 import VERSION, restore, save, twirp

pytestmark = pytest.mark.anyio


async def test_admin_routes_need_the_admin_token(client: httpx2.AsyncClient) -> None:
    for headers in ({}, {"authorization": f"Bearer {mint()}"}):
        assert (await client.get("/api/cache/entries", headers=headers)).status_code == 401


async def test_list_then_delete_by_id_and_by_key(client: httpx2.AsyncClient) -> None:
    await save(client, mint(), "one", b"1")
    await save(client, mint(), "two", b"22")
    await save(client, mint(ref="refs/heads/feature", vm="vm-f"), "two", b"f")
    listed = (await client.get("/api/cache/entries", headers=ADMIN_HEADERS)).json()
    assert listed["total_count"] == 3
    entry = next(e for e in listed["entries"] if e["key"] == "one")
    assert entry["ref"] == "refs/heads/main" and entry["size_in_bytes"] == 1
    assert entry["repository"] == "acme/widgets" and entry["version"] == VERSION
    deleted = await client.delete(f"/api/cache/entries/{entry['id']}", headers=ADMIN_HEADERS)
    assert deleted.status_code == 204
    assert await restore(client, mint(), "one") is None
    again = await client.delete(f"/api/cache/entries/{entry['id']}", headers=ADMIN_HEADERS)
    assert again.status_code == 404
    by_key = await client.delete(
        "/api/cache/entries",
        params={"repository": "acme/widgets", "key": "two", "ref": "refs/heads/main"},
        headers=ADMIN_HEADERS,
    )
    assert by_key.json()["total_count"] == 1
    left = (await client.get("/api/cache/entries", headers=ADMIN_HEADERS)).json()
    assert [(e["key"], e["ref"]) for e in left["entries"]] == [("two", "refs/heads/feature")]


async def test_metrics_count_hits_misses_bytes_and_conflicts(
    client: httpx2.AsyncClient, service: CacheService
) -> None:
    token = mint()
    await save(client, token, "m", b"abcd")
    await restore(client, token, "m")
    await restore(client, token, "m-2", "m")
    await restore(client, token, "absent")
    await twirp(client, "CreateCacheEntry", token, key="m", version=VERSION)
    body = (await client.get("/api/cache/metrics", headers=ADMIN_HEADERS)).json()
    counters = body["repositories"]["acme/widgets"]
    assert counters["hits"] == 2 and counters["restore_key_hits"] == 1 and counters["misses"] == 1
    assert counters["bytes_in"] == 4 and counters["bytes_out"] == 8 and counters["saves"] == 1
    assert counters["conflicts"] == 1 and counters["hit_rate"] == pytest.approx(2 / 3)
    assert body["usage_bytes"] == {"acme/widgets": 4} and body["host_bytes"] == 4
    assert service.metrics.of("acme/widgets").hits == 2  # the object the control plane reads


async def test_uploads_show_what_is_pending_and_scrub_reports(client: httpx2.AsyncClient) -> None:
    token = mint()
    created = await twirp(client, "CreateCacheEntry", token, key="pending", version=VERSION)
    await client.put(created.json()["signed_upload_url"], content=b"123")
    uploads = (await client.get("/api/cache/uploads", headers=ADMIN_HEADERS)).json()
    assert [(u["key"], u["received_bytes"], u["sealed"]) for u in uploads["uploads"]] == [
        ("pending", 3, True)
    ]
    report = (await client.post("/api/cache/scrub", headers=ADMIN_HEADERS)).json()
    assert report == {"checked": 0, "corrupt": [], "expired_uploads": []}


@pytest.mark.parametrize("limits", [Limits(repository_bytes=5)])
async def test_metrics_count_evictions_per_repository(client: httpx2.AsyncClient) -> None:
    token = mint()
    await save(client, token, "old", b"1234")
    await save(client, token, "new", b"5678")
    counters = (await client.get("/api/cache/metrics", headers=ADMIN_HEADERS)).json()
    assert counters["repositories"]["acme/widgets"]["evictions"] == 1
    assert counters["repositories"]["acme/widgets"]["evicted_bytes"] == 4
    assert await restore(client, token, "old") is None and await restore(client, token, "new")
