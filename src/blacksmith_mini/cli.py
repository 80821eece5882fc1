"""The ``blacksmith-mini`` command: ``up`` starts the control plane; more commands join it."""

from __future__ import annotations

import ipaddress
import pathlib
import sys
from typing import Annotated

import typer

from blacksmith_mini import host_cli, logs, operator_cli
from blacksmith_mini import settings as settings_mod
from blacksmith_mini.cache import cli as cache_cli
from blacksmith_mini.vm.firecracker import commands as firecracker_commands

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
    if not _is_loopback(server.host) and server.resolved_api_token() is None:
        fail(
            f"refusing to bind {server.host} without an API token: set server.api_token "
            "(BLACKSMITH_SERVER__API_TOKEN) or bind 127.0.0.1"
        )
    secrets = [
        s
        for s in (
            settings.github.resolved_token(),
            settings.github.resolved_webhook_secret(),
            server.resolved_api_token(),
            server.resolved_admin_token(),
        )
        if s
    ]
    logs.configure(
        level=settings.log_level, json_format=settings.log_format == "json", secrets=secrets
    )
    from blacksmith_mini.api import serving
    from blacksmith_mini.api.app import create_app

    shown = "localhost" if _is_loopback(server.host) else server.host
    print("Starting Blacksmith Mini API Server...", flush=True)
    print(f"Access the API at: http://{shown}:{server.port}", flush=True)
    print(f"API docs at: http://{shown}:{server.port}/docs", flush=True)
    if settings.simulate:
        print("Mode: simulated GitHub (no credentials needed)", flush=True)
    serving.run(create_app(settings), host=server.host, port=server.port)


@app.command()
def doctor(
    config: Annotated[pathlib.Path | None, typer.Option(help="TOML settings file.")] = None,
    data_dir: Annotated[pathlib.Path | None, typer.Option(help="State directory.")] = None,
    simulate: Annotated[bool, typer.Option(help="Check against the simulated GitHub.")] = False,
    firecracker: Annotated[
        bool, typer.Option(help="Also check the Firecracker host (on by default with it).")
    ] = False,
) -> None:
    """Check credentials, permissions, repositories, runner group and (for Firecracker) this
    host; print what to fix for each failure. Exits 1 if anything fails."""
    import asyncio

    overrides: dict[str, object] = {"simulate": True} if simulate else {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        settings = settings_mod.load(config, **overrides)
    except (settings_mod.ConfigError, ValueError) as exc:
        fail(str(exc))
        return
    results: list[tuple[str, list[object]]] = []
    try:
        results.append(("GitHub", list(asyncio.run(_github_checks(settings)))))
    except settings_mod.ConfigError as exc:
        results.append(("GitHub", [_failed("configuration", str(exc))]))
    if firecracker or settings.vm.driver == "firecracker":
        from blacksmith_mini.vm.firecracker import doctor as fc_doctor

        found = fc_doctor.run_checks(settings.vm.firecracker, data_dir=settings.data_dir)
        results.append(("Firecracker host", list(found)))
    failures = 0
    for section, checks in results:
        typer.echo(section)
        for check in checks:
            ok, name, detail, fix = (getattr(check, k) for k in ("ok", "name", "detail", "fix"))
            failures += not ok
            mark = typer.style("ok  " if ok else "FAIL", fg="green" if ok else "red")
            typer.echo(f"  {mark} {name}: {detail}")
            if not ok and fix:
                typer.echo(f"       fix: {fix}")
    if failures:
        raise typer.Exit(code=1)


def _failed(name: str, detail: str) -> object:
    from blacksmith_mini.github import doctor as gh_doctor

    return gh_doctor.Check(name=name, ok=False, detail=detail)


async def _github_checks(settings: settings_mod.Settings) -> list[object]:
    from blacksmith_mini import runtime
    from blacksmith_mini.github import doctor as gh_doctor

    simulation = runtime.Simulation(settings, webhook_secret=None) if settings.simulate else None
    gh = runtime.github_client_for(settings, simulation)
    try:
        github = settings.github
        repositories = [] if github.organization else list(settings.scopes())
        return list(
            await gh_doctor.run_checks(
                gh,
                repositories=repositories,
                organization=github.organization,
                runner_group=github.runner_group,
                prefix=github.runner_prefix,
                image_rootfs=(
                    settings.vm.firecracker.rootfs_path
                    if settings.vm.driver == "firecracker"
                    else None
                ),
            )
        )
    finally:
        await gh.close()


firecracker_commands.register(app)
operator_cli.register(app)
host_cli.register(app)
app.add_typer(cache_cli.app, name="cache")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
