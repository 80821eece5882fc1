"""Serving the app with uvicorn (``blacksmith-mini up``), printing the seed's "API server
ready!" once it listens. Its own module so that commands which serve nothing (the agent,
``host``, ``doctor``) do not load uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)  # type: ignore[arg-type]
        if self.started:
            print("API server ready!", flush=True)


def run(application: Any, *, host: str, port: int) -> None:
    """Serve ``application`` until SIGINT/SIGTERM (graceful shutdown within 3 s)."""
    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=3,
        access_log=False,
    )
    _Server(config).run()
