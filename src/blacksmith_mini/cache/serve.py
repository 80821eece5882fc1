"""Run the cache service alone (tests, benches, a host without the control plane).

    python -m blacksmith_mini.cache.serve --port 0 --dir D --secret-file F [--admin-token-file A]

Binds and listens before printing ``cache service listening on <url>`` (one line, flushed),
so a caller may connect as soon as it reads it; ``--port 0`` picks a free port. The access
log goes through ``tokens.RedactingFilter``: URL signatures and tokens never reach it.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import socket
import sys
from pathlib import Path

import uvicorn

from blacksmith_mini.cache import tokens
from blacksmith_mini.cache.app import create_cache_app
from blacksmith_mini.cache.service import CacheConfig, CacheService
from blacksmith_mini.cache.store import GIB, Limits


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m blacksmith_mini.cache.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--dir", type=Path, required=True, help="the cache directory")
    parser.add_argument("--secret-file", type=Path, required=True, help="HMAC secret (>= 16 B)")
    parser.add_argument("--admin-token-file", type=Path, help="admin bearer token (else random)")
    parser.add_argument("--repo-cap", type=int, default=10 * GIB, help="bytes per repository")
    parser.add_argument("--host-cap", type=int, default=100 * GIB, help="bytes on this host")
    parser.add_argument("--reservation-ttl", type=float, default=600.0, help="seconds")
    parser.add_argument("--public-url", help="base URL VMs reach this service at")
    parser.add_argument("--scrub-interval", type=float, help="seconds between scrubs")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--no-verify-on-serve", action="store_true", help="leave SHA-256 checks to the scrub"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    secret = args.secret_file.read_bytes().strip()
    admin_token = (
        args.admin_token_file.read_text().strip()
        if args.admin_token_file
        else secrets.token_urlsafe(32)
    )
    limits = Limits(
        repository_bytes=args.repo_cap,
        host_bytes=args.host_cap,
        reservation_ttl_seconds=args.reservation_ttl,
    )
    config = CacheConfig(
        directory=args.dir,
        limits=limits,
        public_url=args.public_url,
        verify_on_serve=not args.no_verify_on_serve,
    )
    service = CacheService(config, secret=secret)
    app = create_cache_app(
        service, admin_token=admin_token, scrub_interval_seconds=args.scrub_interval
    )
    for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(tokens.RedactingFilter())
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(512)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"cache service listening on http://{shown}:{port}/\n")
    sys.stdout.flush()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="info", access_log=args.access_log, timeout_keep_alive=30)
    )
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
