"""Serving the app with uvicorn (``blacksmith-mini up``), printing the seed's "API server
ready!" once it listens. Its own module so that commands which serve nothing (the agent,
``host``, ``doctor``) do not load uvicorn."""

from __future__ import annotations

from typing import Any, Literal

import uvicorn

from blacksmith_mini.vm.remote import wire


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)  # type: ignore[arg-type]
        if self.started:
            print("API server ready!", flush=True)


def config(
    application: Any, *, host: str, port: int, lifespan: Literal["on", "off"] = "on"
) -> uvicorn.Config:
    """How ``up`` serves: graceful shutdown within 3 s; idle connections kept for
    ``wire.SERVER_KEEP_ALIVE_SECONDS`` (agents report every few seconds on theirs)."""
    return uvicorn.Config(
        application,
        host=host,
        port=port,
        log_config=None,
        lifespan=lifespan,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=wire.SERVER_KEEP_ALIVE_SECONDS,
        access_log=False,
    )


def run(application: Any, *, host: str, port: int) -> None:
    """Serve ``application`` until SIGINT/SIGTERM."""
    _Server(config(application, host=host, port=port)).run()
