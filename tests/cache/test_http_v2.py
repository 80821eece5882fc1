"""The v2 surface over HTTP: Twirp `CacheService` and the Azure Blob subset the client uses."""

from __future__ import annotations

import base64
import logging
import os
import time
from pathlib import Path
from urllib.parse import quote

import httpx2
import pytest

from blacksmith_mini.cache import tokens
from blacksmith_mini.cache.app import create_cache_app
from blacksmith_mini.cache.service import CacheConfig, CacheService
from blacksmith_mini.cache.twirp import PREFIX

from .conftest import ADMIN, SECRET, mint
from .v2_calls import VERSION, restore, save, twirp

pytestmark = pytest.mark.anyio
MAIN = "refs/heads/main"


async def test_a_save_then_a_restore_round_trips(client: httpx2.AsyncClient) -> None:
    token, data = mint(), os.urandom(200_000)
    finalized = await save(client, token, "deps-1", data)
    assert finalized.json()["ok"] and int(finalized.json()["entry_id"]) > 0
    assert await restore(client, token, "deps-1") == data
    assert await restore(client, token, "deps-2", "deps-") == data
    assert await restore(client, token, "other") is None


async def test_a_second_save_of_a_key_gets_githubs_409(client: httpx2.AsyncClient) -> None:
    token = mint()
    await save(client, token, "k", b"first")
    again = await twirp(client, "CreateCacheEntry", token, key="k", version=VERSION)
    assert again.status_code == 409
    assert again.json() == {
        "code": "already_exists",
        "msg": "cache entry with the same key, version, and scope already exists",
    }


async def test_read_only_and_write_only_tokens_get_the_denials_the_client_knows(
    client: httpx2.AsyncClient,
) -> None:
    created = await twirp(client, "CreateCacheEntry", mint(mode="read"), key="k", version=VERSION)
    assert created.status_code == 200 and created.json()["ok"] is False
    assert created.json()["message"].startswith("cache write denied:")
    found = await twirp(
        client, "GetCacheEntryDownloadURL", mint(mode="write-only"), key="k", version=VERSION
    )
    assert found.status_code == 403 and "cache read denied:" in found.json()["msg"]


async def test_missing_forged_and_foreign_tokens_are_refused(client: httpx2.AsyncClient) -> None:
    for headers in ({}, {"authorization": "Bearer nonsense"}):
        answer = await client.post(f"{PREFIX}/CreateCacheEntry", json={}, headers=headers)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthenticated"
    foreign = mint(secret=b"some-other-control-plane-secret")
    assert (
        await twirp(client, "CreateCacheEntry", foreign, key="k", version=VERSION)
    ).status_code == 401


async def test_one_repositorys_token_never_sees_anothers_entries(
    client: httpx2.AsyncClient,
) -> None:
    await save(client, mint(repository="acme/a"), "shared-key", b"secret bytes of A")
    assert await restore(client, mint(repository="acme/b"), "shared-key") is None
    assert await restore(client, mint(repository="acme/a"), "shared-key") == b"secret bytes of A"


async def test_a_pull_request_saves_into_its_merge_ref_only(client: httpx2.AsyncClient) -> None:
    await save(client, mint(), "base", b"main's")
    pull = mint(ref="refs/pull/3/merge", base="main", vm="vm-pr")
    assert await restore(client, pull, "base") == b"main's"
    assert (await save(client, pull, "from-pr", b"pr's")).json()["ok"]
    assert await restore(client, mint(), "from-pr") is None
    assert await restore(client, mint(ref="refs/pull/4/merge", base="main"), "from-pr") is None
    assert await restore(client, pull, "from-pr") == b"pr's"


async def test_finalize_needs_a_complete_upload_by_the_same_vm(client: httpx2.AsyncClient) -> None:
    token = mint()
    created = await twirp(client, "CreateCacheEntry", token, key="k", version=VERSION)
    early = await twirp(
        client, "FinalizeCacheEntryUpload", token, key="k", version=VERSION, size_bytes="5"
    )
    assert early.status_code == 200 and early.json()["ok"] is False
    await client.put(created.json()["signed_upload_url"], content=b"12345")
    stranger = mint(vm="vm-2")
    other = await twirp(
        client, "FinalizeCacheEntryUpload", stranger, key="k", version=VERSION, size_bytes="5"
    )
    assert other.status_code == 404
    wrong = await twirp(
        client, "FinalizeCacheEntryUpload", token, key="k", version=VERSION, size_bytes="6"
    )
    assert wrong.json()["ok"] is False and await restore(client, token, "k") is None


async def test_blocks_and_a_block_list_make_one_blob(client: httpx2.AsyncClient) -> None:
    token = mint()
    created = await twirp(client, "CreateCacheEntry", token, key="blocks", version=VERSION)
    url = created.json()["signed_upload_url"]
    ids = [base64.b64encode(f"prefix-{i:06d}".encode()).decode() for i in range(3)]
    pieces = [os.urandom(70_000) for _ in ids]
    for block_id, piece in reversed(list(zip(ids, pieces, strict=True))):
        staged = await client.put(f"{url}&comp=block&blockid={quote(block_id)}", content=piece)
        assert staged.status_code == 201, staged.text
    listing = "".join(f"<Latest>{i}</Latest>" for i in ids)
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>'
    committed = await client.put(f"{url}&comp=blocklist", content=body)
    assert committed.status_code == 201, committed.text
    size = str(sum(map(len, pieces)))
    done = await twirp(
        client, "FinalizeCacheEntryUpload", token, key="blocks", version=VERSION, size_bytes=size
    )
    assert done.json()["ok"]
    assert await restore(client, token, "blocks") == b"".join(pieces)


async def test_blob_urls_are_bound_to_their_signature_and_purpose(
    client: httpx2.AsyncClient,
) -> None:
    token = mint()
    created = await twirp(client, "CreateCacheEntry", token, key="k", version=VERSION)
    url = created.json()["signed_upload_url"]
    assert (await client.get(url.replace("/uploads/", "/entries/"))).status_code == 403
    tampered = url.replace("sig=", "sig=x")
    answer = await client.put(tampered, content=b"x")
    assert answer.status_code == 403 and answer.headers["x-ms-error-code"] == "AuthenticationFailed"


async def test_ranged_reads_answer_like_azure(client: httpx2.AsyncClient) -> None:
    token, data = mint(), os.urandom(10_000)
    await save(client, token, "ranged", data)
    found = await twirp(client, "GetCacheEntryDownloadURL", token, key="ranged", version=VERSION)
    url = found.json()["signed_download_url"]
    head = await client.head(url)
    assert head.status_code == 200 and head.headers["content-length"] == "10000"
    assert head.headers["x-ms-blob-type"] == "BlockBlob" and head.headers["etag"]
    assert head.headers["last-modified"] and head.headers["accept-ranges"] == "bytes"
    part = await client.get(url, headers={"x-ms-range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == "bytes 100-199/10000"
    assert part.headers["content-length"] == "100"
    tail = await client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    beyond = await client.get(url, headers={"x-ms-range": "bytes=10000-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */10000"
    stale = await client.get(url, headers={"if-match": '"0xother"', "x-ms-range": "bytes=0-1"})
    assert stale.status_code == 412
    same = await client.get(
        url, headers={"if-match": head.headers["etag"], "x-ms-range": "bytes=0-1"}
    )
    assert same.status_code == 206


async def test_tokens_and_signatures_never_reach_the_logs(
    client: httpx2.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = mint()
    await save(client, token, "quiet", b"data")
    found = await twirp(client, "GetCacheEntryDownloadURL", token, key="quiet", version=VERSION)
    sig = found.json()["signed_download_url"].split("sig=")[1]
    await client.get(found.json()["signed_download_url"])
    service_side = [r for r in caplog.records if not r.name.startswith("httpx")]  # not the client
    logged = "\n".join(record.getMessage() for record in service_side)
    assert token not in logged and sig not in logged


async def test_a_vm_token_gets_its_claim_from_the_resolver(tmp_path: Path) -> None:
    """The control plane mints a token naming only the VM; the service asks ``resolve`` for
    the repository and scopes of the job linked to it, and refuses when it cannot say."""
    claim = tokens.Claim("acme/resolved", MAIN, (MAIN,), int(time.time()) + 60, "9")
    asked: list[str] = []

    async def resolve(vm_id: str) -> tokens.Claim:
        asked.append(vm_id)
        if vm_id != "9":
            raise tokens.TokenError(f"VM {vm_id} has no job linked")
        return claim

    config = CacheConfig(directory=tmp_path / "cache")
    service = CacheService(config, secret=SECRET, resolve=resolve)
    expires = int(time.time()) + 60
    linked = tokens.vm_token(SECRET, vm_id=9, expires_at=expires)
    unlinked = tokens.vm_token(SECRET, vm_id=10, expires_at=expires)
    transport = httpx2.ASGITransport(app=create_cache_app(service, admin_token=ADMIN))
    async with httpx2.AsyncClient(transport=transport, base_url="http://cache.test") as client:
        finalized = await save(client, linked, "k", b"bytes")
        assert finalized.json()["ok"]
        refused = await client.post(
            f"{PREFIX}/GetCacheEntryDownloadURL",
            json={"key": "k", "version": VERSION},
            headers={"authorization": f"Bearer {unlinked}"},
        )
        assert refused.status_code == 401
        assert "no job linked" in refused.json()["msg"]
    assert service.store.entries(repository="acme/resolved")[0].owner == "9"
    assert asked[-1] == "10"
    service.close()
    alone = CacheService(CacheConfig(directory=tmp_path / "other"), secret=SECRET)
    app = create_cache_app(alone, admin_token=ADMIN)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://cache.test"
    ) as client:
        answer = await client.post(
            f"{PREFIX}/GetCacheEntryDownloadURL",
            json={"key": "k", "version": VERSION},
            headers={"authorization": f"Bearer {linked}"},
        )
        assert answer.status_code == 401
    alone.close()
