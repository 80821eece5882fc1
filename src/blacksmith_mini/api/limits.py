"""Request body limits, enforced on the bytes that arrive, not only on ``Content-Length``.

A chunked request has no ``Content-Length``: checking the header alone would let any size
through (and the webhook route reads its whole body before verifying it). This ASGI
middleware counts the body as it is received and answers 413 once it passes the limit: 5 MB
for webhook deliveries (GitHub's own cap is 25 MB, its ``workflow_job`` payloads are a few
KB), 16 MB for a host agent's reports (a few hundred bytes per VM), 1 MB for everything else.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_BODY_BYTES = 1024 * 1024
WEBHOOK_BODY_BYTES = 5 * 1024 * 1024
WEBHOOK_PATH = "/api/webhooks/github"
AGENT_BODY_BYTES = 16 * 1024 * 1024
AGENT_PREFIX = "/api/agent/"


def limit_for(path: str) -> int:
    if path == WEBHOOK_PATH:
        return WEBHOOK_BODY_BYTES
    return AGENT_BODY_BYTES if path.startswith(AGENT_PREFIX) else API_BODY_BYTES


class BodyLimit:
    """Answer 413 for a body over the path's limit, declared or streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(str(scope.get("path", "")))
        text = f"request body too large (limit {limit // (1024 * 1024)} MB)"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await JSONResponse({"detail": text}, status_code=413)(scope, receive, send)
            return
        received = 0
        too_large = started = False

        async def counted() -> Message:
            # Past the limit the app is told the client went away; its answer is replaced.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not (too_large and not started):
                raise
        if too_large and not started:
            await JSONResponse({"detail": text}, status_code=413)(scope, receive, send)
