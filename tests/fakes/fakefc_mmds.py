"""The fake Firecracker's MMDS: the data store and the guest-facing V2 endpoint.

The store is set by ``PUT /mmds`` and merged by ``PATCH /mmds`` (JSON merge patch) on the API
socket, within ``--mmds-size-limit`` (413 beyond). The guest side, :func:`make_mmds_handler`,
answers like Firecracker's MMDS: V2 session tokens (``PUT /latest/api/token`` with a TTL of
1..21600 s, ``X-Forwarded-For`` refused), JSON pointers into the store, ``Accept:
application/json`` unless ``imds_compat``, else IMDS-style text. Stdlib only.
"""

# ruff: noqa: E501  (Firecracker's messages are kept verbatim)

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from fakefc_rules import ApiError, invalid_path

if TYPE_CHECKING:
    from fakefc_vmm import Vmm

TOKEN_PATH = "/latest/api/token"
MAX_TOKEN_TTL = 21600


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: ``patch`` merged into ``target`` (``null`` removes a key)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def updated_store(store: Any, method: str, *, body: Any, limit: int) -> Any:
    """The store after ``PUT`` / ``PATCH /mmds`` with ``body``; 413 past ``limit`` bytes."""
    if method == "PUT":
        new = body
    elif method == "PATCH":
        new = merge_patch(store, body)
    else:
        raise invalid_path(method, "/mmds")
    if len(json.dumps(new)) > limit:
        raise ApiError("The MMDS data store limit was exceeded.", status=413)
    return new


class Tokens:
    """MMDS V2 session tokens and when each expires (monotonic clock)."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}

    def issue(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        self.expiry[token] = time.monotonic() + ttl
        return token

    def valid(self, token: str) -> bool:
        return self.expiry.get(token, 0) >= time.monotonic()


def lookup(store: Any, path: str) -> tuple[bool, Any]:
    """``(found, a copy of the value)`` at ``path`` (a JSON pointer, query ignored)."""
    value = store
    for part in [p for p in path.split("?")[0].split("/") if p]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, json.loads(json.dumps(value))


def make_mmds_handler(vmm: Vmm, *, tokens: Tokens) -> type[http.server.BaseHTTPRequestHandler]:
    """The HTTP handler of the guest's MMDS endpoint, reading ``vmm``'s store and config."""

    class MmdsHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str, *, content_type: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != TOKEN_PATH:
                return self._send(405, "Not allowed HTTP method.")
            if self.headers.get("X-Forwarded-For"):
                return self._send(
                    400, "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For"
                )
            try:
                ttl = int(self.headers.get("X-metadata-token-ttl-seconds", ""))
            except ValueError:
                return self._send(400, "Token time to live value not found.")
            if not 1 <= ttl <= MAX_TOKEN_TTL:
                return self._send(
                    400,
                    f"Invalid time to live value provided for token: {ttl}. Please provide a value between 1 and 21600.",
                )
            self._send(200, tokens.issue(ttl))

        def do_GET(self) -> None:
            config = vmm.mmds_config or {}
            if config.get("version", "V1") == "V2" and not tokens.valid(
                self.headers.get("X-metadata-token", "")
            ):
                return self._send(401, "MMDS token not valid.")
            with vmm.lock:
                found, value = lookup(vmm.mmds, self.path)
            if not found:
                return self._send(404, f"Resource not found: {self.path}.")
            if "application/json" in self.headers.get("Accept", "") and not config.get(
                "imds_compat"
            ):
                return self._send(200, json.dumps(value), content_type="application/json")
            if isinstance(value, dict):
                text = "\n".join(k + ("/" if isinstance(v, dict) else "") for k, v in value.items())
            elif isinstance(value, str):
                text = value
            else:
                return self._send(501, "Cannot retrieve value. The value has an unsupported type.")
            self._send(200, text)

    return MmdsHandler


def serve_mmds(
    address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler]
) -> http.server.ThreadingHTTPServer:
    """An MMDS server on ``address``, served by a daemon thread."""
    server = http.server.ThreadingHTTPServer(address, handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
