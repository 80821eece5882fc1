"""The ``blacksmith-mini`` command: ``up`` starts the control plane; more commands join it."""

from __future__ import annotations

import ipaddress
import pathlib
import sys
from typing import Annotated

import typer
import uvicorn

from blacksmith_mini import logs
from blacksmith_mini import settings as settings_mod

app = typer.Typer(
    help="Blacksmith Mini: one fresh microVM per GitHub Actions job.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Blacksmith Mini: one fresh microVM per GitHub Actions job."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets=sockets)  # type: ignore[arg-type]
        if self.started:
            print("API server ready!", flush=True)


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command()
def up(
    simulate: Annotated[bool, typer.Option(help="Use the built-in simulated GitHub.")] = False,
    config: Annotated[pathlib.Path | None, typer.Option(help="TOML settings file.")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: Annotated[pathlib.Path | None, typer.Option(help="State directory.")] = None,
) -> None:
    """Start the API, the dashboard and the control loop on one port."""
    overrides: dict[str, object] = {"simulate": True} if simulate else {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = settings_mod.load(config, **overrides)
        if host is not None:
            settings.server.host = host
        if port is not None:
            settings.server.port = port
        settings.check_runnable()
    except settings_mod.ConfigError as exc:
        fail(str(exc))
        return
    except ValueError as exc:
        fail(f"invalid settings: {exc}")
        return
    server = settings.server
    if not _is_loopback(server.host) and server.api_token is None:
        fail(
            f"refusing to bind {server.host} without an API token: set server.api_token "
            "(BLACKSMITH_SERVER__API_TOKEN) or bind 127.0.0.1"
        )
    secrets = [
        s.get_secret_value()
        for s in (
            settings.github.token,
            settings.github.webhook_secret,
            server.api_token,
            server.admin_token,
        )
        if s
    ]
    logs.configure(
        level=settings.log_level, json_format=settings.log_format == "json", secrets=secrets
    )
    from blacksmith_mini.api.app import create_app

    shown = "localhost" if _is_loopback(server.host) else server.host
    print("Starting Blacksmith Mini API Server...", flush=True)
    print(f"Access the API at: http://{shown}:{server.port}", flush=True)
    print(f"API docs at: http://{shown}:{server.port}/docs", flush=True)
    if settings.simulate:
        print("Mode: simulated GitHub (no credentials needed)", flush=True)
    application = create_app(settings)
    uv_config = uvicorn.Config(
        application,
        host=server.host,
        port=server.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=3,
        access_log=False,
    )
    _Server(uv_config).run()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
