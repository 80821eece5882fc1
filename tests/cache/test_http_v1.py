"""The v1 surface (``_apis/artifactcache``), with the answers the v1 client reacts to."""

from __future__ import annotations

import os

import httpx2
import pytest

from blacksmith_mini.cache.v1 import PREFIX

from .conftest import bearer, mint

pytestmark = pytest.mark.anyio
VERSION = "b" * 64


async def reserve(client: httpx2.AsyncClient, token: str, key: str, size: int) -> httpx2.Response:
    return await client.post(
        f"{PREFIX}/caches",
        json={"key": key, "version": VERSION, "cacheSize": size},
        headers=bearer(token),
    )


async def patch(
    client: httpx2.AsyncClient, token: str, ident: int, start: int, data: bytes
) -> httpx2.Response:
    headers = bearer(token) | {
        "content-type": "application/octet-stream",
        "content-range": f"bytes {start}-{start + len(data) - 1}/*",
    }
    return await client.patch(f"{PREFIX}/caches/{ident}", content=data, headers=headers)


async def commit(client: httpx2.AsyncClient, token: str, ident: int, size: int) -> httpx2.Response:
    return await client.post(f"{PREFIX}/caches/{ident}", json={"size": size}, headers=bearer(token))


async def lookup(client: httpx2.AsyncClient, token: str, *keys: str) -> httpx2.Response:
    return await client.get(
        f"{PREFIX}/cache",
        params={"keys": ",".join(keys), "version": VERSION},
        headers=bearer(token),
    )


async def test_chunks_in_any_order_then_commit_then_lookup(client: httpx2.AsyncClient) -> None:
    token, data = mint(), os.urandom(100_000)
    reserved = await reserve(client, token, "npm-abc", len(data))
    assert reserved.status_code == 201
    ident = reserved.json()["cacheId"]
    for start in (60_000, 0, 30_000):  # the client sends 4 chunks in parallel
        answer = await patch(
            client, token, ident, start, data[start : start + 30_000 if start < 60_000 else None]
        )
        assert answer.status_code == 204, answer.text
    assert (await lookup(client, token, "npm-abc")).status_code == 204  # not served yet
    assert (await commit(client, token, ident, len(data))).status_code == 204
    found = await lookup(client, token, "npm-x", "npm-")
    assert found.status_code == 200 and found.json()["cacheKey"] == "npm-abc"
    assert found.json()["scope"] == "refs/heads/main"
    archive = await client.get(found.json()["archiveLocation"])
    assert archive.status_code == 200 and archive.content == data


async def test_a_commit_with_a_gap_is_refused_and_never_served(client: httpx2.AsyncClient) -> None:
    token = mint()
    ident = (await reserve(client, token, "gappy", 30)).json()["cacheId"]
    await patch(client, token, ident, 0, b"a" * 10)
    await patch(client, token, ident, 20, b"c" * 10)
    refused = await commit(client, token, ident, 30)
    assert refused.status_code == 400 and "gap" in refused.json()["message"]
    assert (await lookup(client, token, "gappy")).status_code == 204


async def test_a_second_reservation_is_409_with_githubs_message(client: httpx2.AsyncClient) -> None:
    token = mint()
    ident = (await reserve(client, token, "k", 1)).json()["cacheId"]
    again = await reserve(client, token, "k", 1)  # still being uploaded
    assert again.status_code == 409
    await patch(client, token, ident, 0, b"x")
    await commit(client, token, ident, 1)
    after = await reserve(client, token, "k", 1)
    assert after.status_code == 409
    assert after.json()["message"] == (
        f"Cache already exists. Scope: refs/heads/main, Key: k, Version: {VERSION}"
    )


async def test_denials_carry_the_prefixes_the_client_matches(client: httpx2.AsyncClient) -> None:
    denied = await reserve(client, mint(mode="read"), "k", 1)
    assert denied.status_code == 403 and denied.json()["message"].startswith("cache write denied:")
    unread = await lookup(client, mint(mode="write-only"), "k")
    assert unread.status_code == 403 and "cache read denied:" in unread.json()["message"]
    assert (await lookup(client, "not-a-token", "k")).status_code == 401


async def test_an_upload_belongs_to_its_vm_and_scope(client: httpx2.AsyncClient) -> None:
    token = mint()
    ident = (await reserve(client, token, "mine", 3)).json()["cacheId"]
    for other in (mint(vm="vm-2"), mint(repository="acme/other"), mint(ref="refs/heads/x")):
        assert (await patch(client, other, ident, 0, b"abc")).status_code == 404
        assert (await commit(client, other, ident, 3)).status_code == 404


async def test_an_entry_over_the_cap_is_refused_at_reservation(client: httpx2.AsyncClient) -> None:
    answer = await reserve(client, mint(), "huge", 11 * 1024**3)
    assert answer.status_code == 400 and "data cap" in answer.json()["message"]


async def test_a_chunk_longer_than_its_range_is_refused(client: httpx2.AsyncClient) -> None:
    token = mint()
    ident = (await reserve(client, token, "k", 3)).json()["cacheId"]
    headers = bearer(token) | {"content-range": "bytes 0-2/*"}
    answer = await client.patch(f"{PREFIX}/caches/{ident}", content=b"abcdef", headers=headers)
    assert answer.status_code == 400
    bad = await client.patch(
        f"{PREFIX}/caches/{ident}", content=b"a", headers=bearer(token) | {"content-range": "x"}
    )
    assert bad.status_code == 400


async def test_the_debug_listing_shows_readable_entries_only(client: httpx2.AsyncClient) -> None:
    main = mint()
    ident = (await reserve(client, main, "listed", 1)).json()["cacheId"]
    await patch(client, main, ident, 0, b"x")
    await commit(client, main, ident, 1)
    found = await client.get(f"{PREFIX}/caches", params={"key": "listed"}, headers=bearer(main))
    assert found.json()["totalCount"] == 1
    stranger = mint(repository="acme/other")
    hidden = await client.get(
        f"{PREFIX}/caches", params={"key": "listed"}, headers=bearer(stranger)
    )
    assert hidden.json()["totalCount"] == 0


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"{not json"])
async def test_a_body_that_is_not_a_json_object_is_400(
    client: httpx2.AsyncClient, body: bytes
) -> None:
    token = mint()
    headers = bearer(token) | {"content-type": "application/json"}
    for path in (f"{PREFIX}/caches", f"{PREFIX}/caches/1"):
        answer = await client.post(path, content=body, headers=headers)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["message"] == "the body is not a JSON object"
