"""``cache list / delete / metrics``: the admin API from a shell, like ``gh cache list / delete``.

    python -m blacksmith_mini.cache.cli list [--repository R] [--key K] [--ref REF] [--json]
    python -m blacksmith_mini.cache.cli delete ID            # one entry
    python -m blacksmith_mini.cache.cli delete --repository R --key K [--ref REF]
    python -m blacksmith_mini.cache.cli metrics

``--url`` is where the admin routes are (the control plane, default http://127.0.0.1:8000,
or the standalone service), ``--token`` (or ``BLACKSMITH_CACHE_ADMIN_TOKEN``, else
``BLACKSMITH_ADMIN_TOKEN``) its admin token. The main CLI has it as ``blacksmith-mini cache``.
"""

from __future__ import annotations

import datetime
import json
from typing import Annotated, Any

import httpx2
import typer

app = typer.Typer(help="List and delete Actions cache entries.", no_args_is_help=True)
Url = Annotated[
    str, typer.Option(envvar="BLACKSMITH_CACHE_URL", help="Where the cache's admin API is.")
]
Token = Annotated[
    str | None,
    typer.Option(
        envvar=["BLACKSMITH_CACHE_ADMIN_TOKEN", "BLACKSMITH_ADMIN_TOKEN"],
        help="Admin token (the control plane's, or the standalone service's).",
    ),
]
DEFAULT_URL = "http://127.0.0.1:8000"


def _call(method: str, path: str, *, url: str, token: str | None, **params: Any) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    query = {name: value for name, value in params.items() if value is not None}
    try:
        response = httpx2.request(
            method, f"{url.rstrip('/')}/api/cache/{path}", params=query, headers=headers, timeout=30
        )
    except httpx2.HTTPError as error:
        typer.secho(f"error: cannot reach {url} ({error})", err=True, fg="red")
        raise typer.Exit(code=2) from error
    if response.status_code >= 400:
        detail = response.json().get("detail", response.text) if response.content else ""
        typer.secho(f"error ({response.status_code}): {detail}", err=True, fg="red")
        raise typer.Exit(code=1)
    return response.json() if response.content else {}


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    amount = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        amount /= 1024
        if amount < 1024 or unit == "GiB":
            break
    return f"{amount:.1f} {unit}"


def _ago(moment: str) -> str:
    elapsed = datetime.datetime.now(datetime.UTC) - datetime.datetime.fromisoformat(moment)
    minutes = int(elapsed.total_seconds() // 60)
    if minutes < 60:
        return f"about {minutes} minutes ago"
    if minutes < 48 * 60:
        return f"about {minutes // 60} hours ago"
    return f"{minutes // 1440} days ago"


def _table(entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        typer.echo(
            "\t".join(
                [
                    str(entry["id"]),
                    entry["key"],
                    _size(int(entry["size_in_bytes"])),
                    _ago(entry["created_at"]),
                    _ago(entry["last_accessed_at"]),
                    entry["ref"],
                    entry["repository"],
                ]
            )
        )


@app.command("list")
def list_entries(
    repository: Annotated[str | None, typer.Option(help="owner/name")] = None,
    key: Annotated[str | None, typer.Option(help="Exact key.")] = None,
    ref: Annotated[str | None, typer.Option(help="Scope, e.g. refs/heads/main.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Entries, most recently used first: id, key, size, created, accessed, ref, repository."""
    answer = _call("GET", "entries", url=url, token=token, repository=repository, key=key, ref=ref)
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        _table(answer["entries"])


@app.command()
def delete(
    ident: Annotated[int | None, typer.Argument(help="An entry's id.", show_default=False)] = None,
    repository: Annotated[str | None, typer.Option(help="With --key: owner/name")] = None,
    key: Annotated[str | None, typer.Option(help="Delete every entry with this key.")] = None,
    ref: Annotated[str | None, typer.Option(help="With --key: only this scope.")] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Delete one entry by id, or every entry of a repository with a key."""
    if ident is not None:
        _call("DELETE", f"entries/{ident}", url=url, token=token)
        typer.echo(f"Deleted 1 cache entry ({ident})")
        return
    if not (repository and key):
        typer.secho("error: give an id, or --repository and --key", err=True, fg="red")
        raise typer.Exit(code=2)
    answer = _call(
        "DELETE", "entries", url=url, token=token, repository=repository, key=key, ref=ref
    )
    typer.echo(f"Deleted {answer['total_count']} cache entries with key {key}")


@app.command()
def metrics(url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Hits, misses, bytes in and out, evictions per repository, and disk use."""
    typer.echo(json.dumps(_call("GET", "metrics", url=url, token=token), indent=2))


if __name__ == "__main__":
    app()
