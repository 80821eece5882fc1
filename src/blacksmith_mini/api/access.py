"""Who may do what under /api: a plain ASGI middleware (``AccessControl``).

- No token configured (the loopback default): everything, as the local operator.
- ``server.api_token``: reading (GET) needs it or the admin token.
- ``server.admin_token``: changing anything (POST/PATCH/...: operator actions, the simulator's
  job control) needs it; with only a read token, changes are refused.

Webhooks, agents and health are public (webhooks carry their own signature, agents their host
token). Tokens come as ``Authorization: Bearer ...`` or, for EventSource, ``?access_token=``.
The actor (``X-Blacksmith-Actor`` and how it was let in) goes to ``request.state.actor``.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` passes
every chunk of a streamed response through a memory stream and a task of its own, which is
most of what each event-stream client costs per event.
"""

from __future__ import annotations

import hmac
import urllib.parse

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ACTOR_HEADER = "x-blacksmith-actor"
PUBLIC_PATHS = ("/api/health", "/api/webhooks/", "/api/agent/")


class AccessControl:
    def __init__(self, app: ASGIApp, *, read: str | None, admin: str | None) -> None:
        self.app, self.read, self.admin = app, read, admin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = str(scope.get("path", "")), str(scope.get("method", "GET"))
        guarded = path.startswith(("/api/", "/_sim/faults")) or path == "/metrics"
        if method == "OPTIONS" or not guarded or path.startswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value for key, value in scope.get("headers") or []}
        given = headers.get("authorization", b"").decode("latin-1")
        given = given.removeprefix("Bearer ").strip() or _query_token(scope)
        read, admin = self.read, self.admin
        is_admin = admin is not None and hmac.compare_digest(given, admin)
        is_reader = is_admin or (read is not None and hmac.compare_digest(given, read))
        writing = method not in ("GET", "HEAD")
        if read is None and admin is None:
            who = "local operator"
        elif writing and admin is None:
            detail = "changes are disabled: set server.admin_token to allow operator actions"
            await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
            return
        elif (writing and not is_admin) or not is_reader:
            needed = "admin token" if writing else "API token"
            refused = JSONResponse(
                {"detail": f"missing or wrong {needed}: send 'Authorization: Bearer <token>'"},
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await refused(scope, receive, send)
            return
        else:
            who = "admin token" if is_admin else "read token"
        name = headers.get(ACTOR_HEADER, b"").decode("utf-8", "replace").strip()[:64]
        clean = "".join(ch for ch in name if ch.isprintable())
        scope.setdefault("state", {})["actor"] = f"{clean} ({who})" if clean else who
        await self.app(scope, receive, send)


def _query_token(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    found = urllib.parse.parse_qs(query).get("access_token")
    return found[0] if found else ""
