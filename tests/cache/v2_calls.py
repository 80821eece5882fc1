"""The v2 calls a VM's cache client makes, as plain helpers: ``twirp``, ``save`` (create,
upload, finalize) and ``restore`` (download URL, then the bytes). Shared by the service's
tests and the control plane's and agents' (each against a client on its own service)."""

from __future__ import annotations

import httpx2

from blacksmith_mini.cache.twirp import PREFIX

VERSION = "3ad75f27293d65a135214b8c82b296080f911dc107e52f1e7ec871a2eda46e69"


async def twirp(
    client: httpx2.AsyncClient, method: str, token: str, **body: object
) -> httpx2.Response:
    headers = {"authorization": f"Bearer {token}"}
    return await client.post(f"{PREFIX}/{method}", json=body, headers=headers)


async def save(client: httpx2.AsyncClient, token: str, key: str, data: bytes) -> httpx2.Response:
    created = await twirp(client, "CreateCacheEntry", token, key=key, version=VERSION)
    assert created.status_code == 200 and created.json()["ok"], created.text
    put = await client.put(
        created.json()["signed_upload_url"], content=data, headers={"x-ms-blob-type": "BlockBlob"}
    )
    assert put.status_code == 201, put.text
    return await twirp(
        client,
        "FinalizeCacheEntryUpload",
        token,
        key=key,
        version=VERSION,
        size_bytes=str(len(data)),
    )


async def restore(
    client: httpx2.AsyncClient, token: str, key: str, *restore_keys: str
) -> bytes | None:
    found = await twirp(
        client,
        "GetCacheEntryDownloadURL",
        token,
        key=key,
        restore_keys=list(restore_keys),
        version=VERSION,
    )
    assert found.status_code == 200, found.text
    if not found.json()["ok"]:
        return None
    got = await client.get(found.json()["signed_download_url"])
    assert got.status_code == 200
    return got.content
