"""A minimal v2 client that moves one file with almost no CPU of its own (the bench's raw rows).

It speaks the same requests as ``@actions/cache``'s transfer: Twirp ``CreateCacheEntry``, Put
Block of 64 MiB blocks, 8 at once, then Put Block List and ``FinalizeCacheEntryUpload``; and
``GetCacheEntryDownloadURL`` then one plain ``GET``. But the bodies go out with ``sendfile``
(the kernel copies page cache to socket) and the download is received into one reused buffer
and discarded, so what the wall time shows is the service's side of the transfer.
"""

from __future__ import annotations

import base64
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPResponse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

BLOCK = 64 << 20
PARALLEL = 8
RECEIVE = 1 << 20


def twirp(base_url: str, token: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx2.post(
        f"{base_url}twirp/github.actions.results.api.v1.CacheService/{method}",
        json=body,
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    )
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def _connect(url: str) -> tuple[socket.socket, str]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return sock, target


def _put(url: str, *, path: Path, offset: int, count: int) -> None:
    sock, target = _connect(url)
    with sock, path.open("rb") as handle:
        head = (
            f"PUT {target} HTTP/1.1\r\nHost: blob\r\nContent-Length: {count}\r\n"
            "x-ms-blob-type: BlockBlob\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(head.encode())
        sock.sendfile(handle, offset, count)
        response = HTTPResponse(sock)
        response.begin()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"PUT answered {response.status}")


def upload(base_url: str, token: str, *, key: str, path: Path) -> float:
    """Seconds the blocks and the block list took (Twirp calls around them not counted)."""
    created = twirp(base_url, token, "CreateCacheEntry", {"key": key, "version": "raw"})
    url = created["signed_upload_url"]
    size = path.stat().st_size
    ids = [base64.b64encode(f"block-{n:08d}".encode()).decode() for n in range(-(-size // BLOCK))]
    started = time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = [
            pool.submit(
                _put,
                f"{url}&comp=block&blockid={block_id}",
                path=path,
                offset=n * BLOCK,
                count=min(BLOCK, size - n * BLOCK),
            )
            for n, block_id in enumerate(ids)
        ]
        for future in futures:
            future.result()
    listing = "".join(f"<Latest>{block_id}</Latest>" for block_id in ids)
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listing}</BlockList>'
    answer = httpx2.put(f"{url}&comp=blocklist", content=body.encode(), timeout=60)
    if answer.status_code != 201:
        raise RuntimeError(f"Put Block List answered {answer.status_code}")
    seconds = time.perf_counter() - started
    finalize = {"key": key, "version": "raw", "size_bytes": str(size)}
    if not twirp(base_url, token, "FinalizeCacheEntryUpload", finalize).get("ok"):
        raise RuntimeError("FinalizeCacheEntryUpload refused")
    return seconds


def download(base_url: str, token: str, *, key: str) -> tuple[float, int]:
    """Seconds one GET of the entry took, and the bytes received (into a reused buffer)."""
    found = twirp(base_url, token, "GetCacheEntryDownloadURL", {"key": key, "version": "raw"})
    if not found.get("ok"):
        raise RuntimeError(f"no entry for {key}")
    started = time.perf_counter()
    sock, target = _connect(found["signed_download_url"])
    buffer = memoryview(bytearray(RECEIVE))
    with sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: blob\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            piece = sock.recv(4096)
            if not piece:
                raise RuntimeError("connection closed before the headers")
            head += piece
        head, _, rest = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        received = len(rest)
        while count := sock.recv_into(buffer):
            received += count
    return time.perf_counter() - started, received
