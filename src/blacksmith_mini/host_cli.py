"""``blacksmith-mini host ...`` and ``blacksmith-mini agent``.

``host add|list|cordon|drain|uncordon|remove`` call a running control plane's API (``--url``,
admin token from ``--token`` or ``BLACKSMITH_ADMIN_TOKEN``), like the other operator commands.
``agent`` runs on each host: it connects out to the control plane with the host's token.
"""

from __future__ import annotations

import asyncio
import pathlib
from typing import Annotated, Any

import typer

from blacksmith_mini import logs
from blacksmith_mini.operator_cli import DEFAULT_URL, Actor, Reason, Token, Url, _call, _show

host_app = typer.Typer(help="Hosts that run VMs: add, list, cordon, drain, remove.")


@host_app.command("add")
def add(
    name: str,
    token_file: Annotated[
        pathlib.Path | None, typer.Option(help="Write the agent's token here (mode 600).")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    actor: Actor = None,
) -> None:
    """Register a host and print (or save) its agent's token. Shown once."""
    answer = _call("POST", "/api/hosts", url=url, token=token, actor=actor, body={"name": name})
    if token_file is not None:
        token_file.touch(mode=0o600, exist_ok=True)
        token_file.chmod(0o600)
        token_file.write_text(str(answer["token"]) + "\n")
        typer.echo(f"host {name} added; its token is in {token_file}")
        typer.echo(str(answer["next_step"]))
        return
    _show(answer)


@host_app.command("list")
def list_hosts(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Every host: state, capacity, reserved, VMs, heartbeat age, versions."""
    answer = _call("GET", "/api/hosts", url=url, token=token, actor=None, body={})
    for host in answer["hosts"]:
        capacity = host.get("capacity") or {}
        reserved = host["reserved"]
        age = host.get("heartbeat_age_seconds")
        typer.echo(
            f"{host['name']:<24} {host['state']:<9} vms={host['vms']:<4} "
            f"vcpus={reserved['vcpus']}/{capacity.get('vcpus', '?')} "
            f"mem={reserved['memory_mib']}/{capacity.get('memory_mib', '?')}MiB "
            f"heartbeat={'-' if age is None else f'{age:.1f}s'}"
            + (f"  ({host['down_reason']})" if host.get("down_reason") else "")
        )


def _admin(
    verb: str, name: str, *, reason: str, url: str, token: str | None, actor: str | None
) -> None:
    body = {"reason": reason}
    _show(_call("POST", f"/api/hosts/{name}/{verb}", url=url, token=token, actor=actor, body=body))


@host_app.command("cordon")
def cordon(
    name: str, reason: Reason = "", url: Url = DEFAULT_URL, token: Token = None, actor: Actor = None
) -> None:
    """New VMs go elsewhere; its VMs keep running."""
    _admin("cordon", name, reason=reason, url=url, token=token, actor=actor)


@host_app.command("drain")
def drain(
    name: str, reason: Reason = "", url: Url = DEFAULT_URL, token: Token = None, actor: Actor = None
) -> None:
    """New VMs go elsewhere; idle VMs stop, busy ones finish: the host empties."""
    _admin("drain", name, reason=reason, url=url, token=token, actor=actor)


@host_app.command("uncordon")
def uncordon(
    name: str, reason: Reason = "", url: Url = DEFAULT_URL, token: Token = None, actor: Actor = None
) -> None:
    """Undo a cordon or a drain."""
    _admin("uncordon", name, reason=reason, url=url, token=token, actor=actor)


@host_app.command("remove")
def remove(name: str, url: Url = DEFAULT_URL, token: Token = None, actor: Actor = None) -> None:
    """Forget a host and end its token (refused while it has active VMs)."""
    _call("DELETE", f"/api/hosts/{name}", url=url, token=token, actor=actor, body={})
    typer.echo(f"host {name} removed; its token no longer works")


def agent(
    control_plane: Annotated[str | None, typer.Option(help="The control plane's URL.")] = None,
    token_file: Annotated[
        pathlib.Path | None, typer.Option(help="File with the host token.")
    ] = None,
    data_dir: Annotated[
        pathlib.Path | None, typer.Option(help="The agent's state directory.")
    ] = None,
    driver: Annotated[str | None, typer.Option(help="local or firecracker.")] = None,
    simulated_runners: Annotated[
        bool, typer.Option(help="Run the simulator's runner (simulated GitHub only).")
    ] = False,
    vcpus: Annotated[int | None, typer.Option(help="vCPUs to offer (default: all).")] = None,
    memory_mib: Annotated[int | None, typer.Option(help="Memory to offer, MiB.")] = None,
) -> None:
    """Run this host's VMs for a control plane (connects out with the host's token)."""
    from pydantic import ValidationError

    from blacksmith_mini.agent import main as agent_main
    from blacksmith_mini.agent import settings as agent_settings

    given: dict[str, Any] = {
        "control_plane": control_plane,
        "token_file": token_file,
        "data_dir": data_dir,
        "driver": driver,
        "simulated_runners": simulated_runners or None,
        "vcpus": vcpus,
        "memory_mib": memory_mib,
    }
    try:
        settings = agent_settings.AgentSettings(**{k: v for k, v in given.items() if v is not None})
        settings.resolved_token()
        if settings.driver == "local":
            settings.command()
    except (ValidationError, ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    logs.configure(level="info", json_format=False, secrets=[settings.resolved_token()])
    from blacksmith_mini.agent.agent import Revoked

    try:
        asyncio.run(agent_main.serve(settings))
    except Revoked as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=3) from exc


def register(app: typer.Typer) -> None:
    app.add_typer(host_app, name="host")
    app.command("agent")(agent)
