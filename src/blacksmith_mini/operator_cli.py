"""Operator commands of ``blacksmith-mini``: they call a running server's API.

``drain``, ``resume``, ``stop-vm``, ``pool pause|resume|limits``. The server's URL comes from
``--url`` (default http://127.0.0.1:8000), the admin token from ``--token`` or
``BLACKSMITH_ADMIN_TOKEN``; who you are (``--actor``, default ``$USER``) and ``--reason`` are
recorded with the event.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import httpx2
import typer

Url = Annotated[str, typer.Option(help="The server's URL.")]
Token = Annotated[
    str | None, typer.Option(envvar="BLACKSMITH_ADMIN_TOKEN", help="Admin token, if set.")
]
Reason = Annotated[str, typer.Option(help="Why; recorded with the event.")]
Actor = Annotated[str | None, typer.Option(help="Who; default: your user name.")]
DEFAULT_URL = "http://127.0.0.1:8000"

pool_app = typer.Typer(help="Pause, resume or resize a pool.", no_args_is_help=True)


def _call(
    method: str, path: str, *, url: str, token: str | None, actor: str | None, body: dict[str, Any]
) -> dict[str, Any]:
    headers = {"x-blacksmith-actor": actor or getpass.getuser()}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        response = httpx2.request(
            method, url.rstrip("/") + path, json=body, headers=headers, timeout=15.0
        )
    except httpx2.HTTPError as exc:
        typer.secho(
            f"error: cannot reach {url} ({exc}); is the server running?", err=True, fg="red"
        )
        raise typer.Exit(code=2) from exc
    answer = response.json() if response.content else {}
    if response.status_code >= 400:
        typer.secho(
            f"error ({response.status_code}): {answer.get('detail', answer)}", err=True, fg="red"
        )
        raise typer.Exit(code=1)
    return dict(answer)


def _show(answer: dict[str, Any]) -> None:
    typer.echo(json.dumps(answer, indent=2))


def register(app: typer.Typer) -> None:
    @app.command()
    def drain(
        reason: Reason = "", url: Url = DEFAULT_URL, token: Token = None, actor: Actor = None
    ) -> None:
        """Start no new VMs; running jobs finish."""
        _show(
            _call(
                "POST",
                "/api/control/drain",
                url=url,
                token=token,
                actor=actor,
                body={"reason": reason},
            )
        )

    @app.command()
    def resume(
        reason: Reason = "", url: Url = DEFAULT_URL, token: Token = None, actor: Actor = None
    ) -> None:
        """Undo a drain."""
        _show(
            _call(
                "POST",
                "/api/control/resume",
                url=url,
                token=token,
                actor=actor,
                body={"reason": reason},
            )
        )

    @app.command("stop-vm")
    def stop_vm(
        vm_id: int,
        force: Annotated[bool, typer.Option(help="Stop even a busy VM (its job fails).")] = False,
        reason: Reason = "",
        url: Url = DEFAULT_URL,
        token: Token = None,
        actor: Actor = None,
    ) -> None:
        """Stop one VM (refused for a busy VM unless --force)."""
        _show(
            _call(
                "POST",
                f"/api/vms/{vm_id}/stop",
                url=url,
                token=token,
                actor=actor,
                body={"reason": reason, "force": force},
            )
        )

    @pool_app.command("pause")
    def pause(
        name: str,
        reason: Reason = "",
        url: Url = DEFAULT_URL,
        token: Token = None,
        actor: Actor = None,
    ) -> None:
        """Start no new VMs in the pool."""
        _show(
            _call(
                "POST",
                f"/api/pools/{name}/pause",
                url=url,
                token=token,
                actor=actor,
                body={"reason": reason},
            )
        )

    @pool_app.command("resume")
    def resume_pool(
        name: str,
        reason: Reason = "",
        url: Url = DEFAULT_URL,
        token: Token = None,
        actor: Actor = None,
    ) -> None:
        """Undo a pool pause."""
        _show(
            _call(
                "POST",
                f"/api/pools/{name}/resume",
                url=url,
                token=token,
                actor=actor,
                body={"reason": reason},
            )
        )

    @pool_app.command("limits")
    def limits(
        name: str,
        min_idle: Annotated[int | None, typer.Option(help="Warm VMs kept idle.")] = None,
        max_vms: Annotated[int | None, typer.Option(help="Most VMs in the pool.")] = None,
        reason: Reason = "",
        url: Url = DEFAULT_URL,
        token: Token = None,
        actor: Actor = None,
    ) -> None:
        """Change a pool's limits at run time."""
        body: dict[str, Any] = {"reason": reason}
        if min_idle is not None:
            body["min_idle"] = min_idle
        if max_vms is not None:
            body["max_vms"] = max_vms
        _show(_call("PATCH", f"/api/pools/{name}", url=url, token=token, actor=actor, body=body))

    app.add_typer(pool_app, name="pool")
