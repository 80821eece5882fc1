"""The cache as the control plane hosts it on one box: the service, its VM-facing listener,
the VMs' boot data and the secret that signs their tokens.

The listener is its own uvicorn server on ``[cache] host:port`` (no API token there: every
call carries its VM's token or a signed URL), run in the control plane's event loop. The
secret is 32 random bytes in ``<data_dir>/cache-secret`` (0600), kept across restarts so
tokens already in running VMs stay valid. The token handed to a VM names only the VM; the
service resolves its claim through ``resolve`` (``control.cache_claims``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn

from blacksmith_mini.cache import app as cache_app
from blacksmith_mini.cache import tokens
from blacksmith_mini.cache.service import CacheConfig, CacheService
from blacksmith_mini.cache.store import Limits
from blacksmith_mini.settings_cache import CacheSettings

log = logging.getLogger(__name__)
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - we compare, the operator chose to bind


def load_secret(path: pathlib.Path) -> bytes:
    """The cache secret kept at ``path``, made (0600) on first use."""
    try:
        found = path.read_bytes().strip()
    except FileNotFoundError:
        found = b""
    if len(found) >= 32:
        return found
    made = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(made)
    return made


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server inside another's process: the main server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class CacheHost:
    def __init__(
        self,
        settings: CacheSettings,
        *,
        data_dir: pathlib.Path,
        resolve: Callable[[str], Awaitable[tokens.Claim]],
        for_firecracker: bool,
    ) -> None:
        self.settings = settings
        self.for_firecracker = for_firecracker
        directory = settings.directory or data_dir / "cache"
        limits = Limits(repository_bytes=settings.repository_bytes, host_bytes=settings.host_bytes)
        self.service = CacheService(
            CacheConfig(directory=directory, limits=limits),
            secret=load_secret(data_dir / "cache-secret"),
            resolve=resolve,
        )
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def url(self) -> str:
        """The base URL a VM reaches the cache at (``{host_ip}``: the VM's gateway)."""
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/") + "/"
        host = self.settings.host
        if self.for_firecracker or host in WILDCARDS:
            host = "{host_ip}" if self.for_firecracker else "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port or self.settings.port}/"

    def boot_data(self, vm_id: int) -> dict[str, str]:
        """The boot data's ``cache``: where it is, this VM's token, where to fall back to."""
        expires = int(self.service.clock()) + self.settings.token_ttl_seconds
        return {
            "url": self.url(),
            "token": tokens.vm_token(self.service.secret, vm_id=vm_id, expires_at=expires),
            "fallback_url": self.settings.fallback_url,
        }

    def bind(self) -> socket.socket:
        """Binds the VM-facing socket now, so a taken port fails start-up with a clear error."""
        host = self.settings.host or "0.0.0.0"  # noqa: S104 - empty means every address
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, self.settings.port))
        except OSError as error:
            sock.close()
            raise OSError(
                f"the cache cannot listen on {host}:{self.settings.port} ({error.strerror}): "
                "free the port or set [cache] port (BLACKSMITH_CACHE__PORT)"
            ) from error
        sock.listen(512)
        self.port = int(sock.getsockname()[1])
        return sock

    async def start(self) -> None:
        sock = self.bind()
        app = cache_app.create_vm_app(self.service)
        for name in ("uvicorn", "uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).addFilter(tokens.RedactingFilter())
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_keep_alive=30, lifespan="off"
        )
        self._server = _EmbeddedServer(config)
        self._tasks.append(
            asyncio.create_task(self._server.serve(sockets=[sock]), name="cache-listener")
        )
        interval = self.settings.scrub_interval_seconds
        if interval:
            self._tasks.append(
                asyncio.create_task(self.service.run_scrubber(interval), name="cache-scrub")
            )
        log.info("Actions cache listening on %s (VMs use %s)", self.port, self.url())
        if self.for_firecracker and self.settings.host.startswith("127."):
            log.warning(
                "the Actions cache listens on %s only: Firecracker VMs cannot reach it (their "
                'cache calls go to GitHub\'s); set [cache] host = "0.0.0.0" '
                "(BLACKSMITH_CACHE__HOST) to serve them",
                self.settings.host,
            )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in reversed(self._tasks):
            if task.get_name() == "cache-scrub":
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
        self.service.close()
