#!/usr/bin/env python3
"""blacksmith-cache-proxy: the guest's door to the host's Actions cache (stdlib only).

The runner in this image is patched (``blacksmith-mini image build``) so that it no longer
overwrites ``ACTIONS_RESULTS_URL`` and ``ACTIONS_CACHE_URL`` in a step's environment; the
guest agent sets both to this proxy (``http://127.0.0.1:51123/``). Every cache request of
``@actions/cache`` (and the ``setup-*`` actions, which use it) then comes here:

- while the host's cache answers its health check, the request goes to it with this VM's own
  cache token in ``Authorization`` (the runner's ``ACTIONS_RUNTIME_TOKEN``, which the client
  sends, is GitHub's and never leaves for the host);
- when the host's cache is down (refused, timed out, or failing its health check), a v2 call
  (Twirp, ``/twirp/...``) goes on to GitHub's own cache service (``--fallback``, the results
  URL of github.com unless told otherwise) exactly as the client sent it, GitHub's token and
  all, so no job fails or even misses because our cache is unavailable. A v1 call
  (``/_apis/artifactcache/...``) has no fallback (GitHub's v1 URL is per account and the
  runner no longer hands it over): it is answered 503, which the client takes as "no cache"
  and goes on.

Every other call (the artifact service's Twirp calls share ``ACTIONS_RESULTS_URL``) goes to
GitHub unchanged, streamed, whatever the host's cache is doing. Without a host cache (no
``--cache-url``) everything goes to GitHub: the patched runner then still works as a stock one.

The health check (``GET /_health``, 1 s) is remembered for ``--health-ttl`` seconds; a
request that cannot reach the host marks it down at once and, when its body is still in hand
(v2 bodies are small JSON), is sent to the fallback instead. Bodies stream in 1 MiB pieces;
nothing is logged but the method, the path without its query, the status and where it went.
Configuration comes from flags or ``BLACKSMITH_CACHE_*`` variables, or (``--config-stdin``, as
the guest agent starts it) the boot data's ``cache`` as JSON on stdin: ``url``, ``token``,
``fallback_url``, so the token is in no file and no command line.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any

DEFAULT_PORT = 51123
GITHUB_RESULTS_URL = "https://results-receiver.actions.githubusercontent.com/"
CACHE_V2 = "/twirp/github.actions.results.api.v1.CacheService/"
CACHE_V1 = "/_apis/artifactcache/"
PIECE = 1 << 20
SMALL_BODY = 4 << 20  # kept in hand for a retry on the fallback
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class Upstream:
    """One HTTP(S) service to forward to: its base URL, opened per request."""

    def __init__(self, url: str, *, timeout: float) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url, self.scheme, self.timeout = url, parsed.scheme, timeout
        self.host = parsed.hostname
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.base = parsed.path.rstrip("/")

    def connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=self.timeout)

    def netloc(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class Health:
    """Whether the host's cache is up, asked at most every ``ttl`` seconds."""

    def __init__(self, upstream: Upstream, *, ttl: float) -> None:
        self.upstream, self.ttl = upstream, ttl
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._up = False

    def up(self) -> bool:
        with self._lock:
            if time.monotonic() - self._checked_at < self.ttl:
                return self._up
        found = self._probe()
        with self._lock:
            self._up, self._checked_at = found, time.monotonic()
        return found

    def mark_down(self) -> None:
        with self._lock:
            self._up, self._checked_at = False, time.monotonic()

    def _probe(self) -> bool:
        connection = self.upstream.connect()
        connection.timeout = min(1.0, self.upstream.timeout)
        try:
            connection.request("GET", self.upstream.base + "/_health")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()


class Proxy(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        cache: Upstream | None,
        token: str,
        fallback: Upstream | None,
        health: Health | None,
    ) -> None:
        super().__init__(address, Handler)
        self.cache, self.token, self.fallback, self.health = cache, token, fallback, health


class Handler(http.server.BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_PATCH(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def log_message(self, format: str, *args: Any) -> None:
        """No request lines from ``http.server``: they could carry a query's signature."""

    def _forward(self) -> None:
        server, self._started = self.server, False
        path = self.path if self.path.startswith("/") else "/" + self.path
        ours = path.startswith((CACHE_V2, CACHE_V1))  # the rest (artifacts, ...) is GitHub's
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length <= SMALL_BODY else None
        if ours and server.cache is not None and server.health and server.health.up():
            try:
                self._send(server.cache, path, body=body, length=length, ours=True)
                return
            except (OSError, http.client.HTTPException) as exc:
                if server.health:
                    server.health.mark_down()
                v2 = path.startswith(CACHE_V2)
                note(f"host cache unreachable ({type(exc).__name__}); {self._where(v2)}")
                if body is None or self._started:
                    self.close_connection = True
                    return
        if not path.startswith(CACHE_V1) and server.fallback is not None:
            try:
                self._send(server.fallback, path, body=body, length=length, ours=False)
            except (OSError, http.client.HTTPException) as exc:
                if not self._started:
                    self._fail(502, f"GitHub's service did not answer ({type(exc).__name__})")
                self.close_connection = True
            return
        if body is None:
            self._drain(length)
        self._fail(503, "the host's cache is unavailable and this call has no fallback")

    _started = False

    def _send(
        self, upstream: Upstream, path: str, *, body: bytes | None, length: int, ours: bool
    ) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if ours:
            headers["Authorization"] = f"Bearer {self.server.token}"
        headers["Host"] = upstream.netloc()
        headers["Content-Length"] = str(length)
        connection = upstream.connect()
        try:
            connection.putrequest(self.command, upstream.base + path, skip_host=True)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders()
            if body is not None:
                connection.send(body)
            else:
                self._stream_body(connection, length)
            answer = connection.getresponse()
            self._relay(answer, where="host" if ours else "github")
        finally:
            connection.close()

    def _stream_body(self, connection: http.client.HTTPConnection, length: int) -> None:
        left = length
        while left > 0:
            piece = self.rfile.read(min(PIECE, left))
            if not piece:
                raise ConnectionError("the client's body ended early")
            connection.send(piece)
            left -= len(piece)

    def _relay(self, answer: http.client.HTTPResponse, *, where: str) -> None:
        self._started = True
        self.send_response(answer.status, answer.reason)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        declared = answer.getheader("content-length")
        chunked = declared is None
        if declared is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", declared)
        self.end_headers()
        while piece := answer.read(PIECE):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        note(f"{self.command} {self.path.split('?')[0]} -> {answer.status} ({where})")

    def _drain(self, length: int) -> None:
        left = length
        while left > 0 and (piece := self.rfile.read(min(PIECE, left))):
            left -= len(piece)

    def _fail(self, status: int, message: str) -> None:
        payload = json.dumps({"msg": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        note(f"{self.command} {self.path.split('?')[0]} -> {status}: {message}")

    def _where(self, twirp: bool) -> str:
        return "using GitHub's cache" if twirp and self.server.fallback else "no fallback"


def note(message: str) -> None:
    sys.stderr.write(f"blacksmith-cache-proxy: {message}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Blacksmith Mini guest cache proxy")
    parser.add_argument("--listen", default=env("BLACKSMITH_CACHE_LISTEN", "127.0.0.1"))
    port = env("BLACKSMITH_CACHE_PORT", str(DEFAULT_PORT))
    parser.add_argument("--port", type=int, default=int(port), help="0: any free port")
    parser.add_argument("--cache-url", default=env("BLACKSMITH_CACHE_URL", ""))
    parser.add_argument("--token-file", default=env("BLACKSMITH_CACHE_TOKEN_FILE", ""))
    parser.add_argument("--fallback", default=env("BLACKSMITH_CACHE_FALLBACK", GITHUB_RESULTS_URL))
    parser.add_argument(
        "--config-stdin", action="store_true", help="JSON: url, token, fallback_url"
    )
    parser.add_argument("--health-ttl", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    cache, token = None, ""
    if args.config_stdin:  # from the guest agent: the boot data's "cache"
        given = json.loads(sys.stdin.read() or "{}")
        args.cache_url, token = str(given.get("url") or ""), str(given.get("token") or "")
        args.fallback = str(given.get("fallback_url") or args.fallback)
    elif args.token_file:
        with open(args.token_file, encoding="utf-8") as handle:  # a file: never in argv or ps
            token = handle.read().strip()
    if args.cache_url and token:
        cache = Upstream(args.cache_url, timeout=args.timeout)
    else:
        note("no host cache (no URL and token given): every call goes to GitHub")
    fallback = Upstream(args.fallback, timeout=args.timeout) if args.fallback != "none" else None
    server = Proxy(
        (args.listen, args.port),
        cache=cache,
        token=token,
        fallback=fallback,
        health=Health(cache, ttl=args.health_ttl) if cache is not None else None,
    )
    bound = server.server_address
    print(f"blacksmith-cache-proxy listening on http://{bound[0]!s}:{bound[1]}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    sys.exit(main())
