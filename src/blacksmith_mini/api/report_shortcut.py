"""``POST /api/agent/report`` answered beneath FastAPI's routing: the hot path's shortcut.

Every host reports every 5 s. Nearly half of a report's CPU was not the report: it was the way
through the stack (CORS, access control, FastAPI's exception and exit-stack layers, routing
over every router, dependency solving, each layer's wrapped ``send``), and it costs more when
reports come one at a time, as they do, than back to back (1.7-2x: cold caches). This plain
ASGI middleware sits just inside ``limits.BodyLimit`` (which still bounds the body) and
answers that one operation with the route's own code (``routes.agent.answer_report``) and the
same answers: FastAPI's exception handlers write its errors. Everything else, and every
request before start-up has finished, goes on to the app. Agent paths are public to the
access control (host tokens), and no browser calls them, so nothing of either is skipped.

The route stays in the app: it is what the OpenAPI document describes, and what a request
that is not a plain POST of this path reaches. ``tests/api/test_report_shortcut.py`` checks
that both give the same answers.
"""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from blacksmith_mini.api.routes import agent

PATH = agent.REPORT_PATH


class ReportShortcut:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is None:  # still starting: the app's 503
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            raw = await request.body()
        except ClientDisconnect:  # gone, or over the body limit (which answers 413)
            return
        answer: Response
        try:
            token = agent.token_of(runtime, request.headers.get("authorization", ""))
            answer = await agent.answer_report(runtime, token, raw=raw)
        except HTTPException as error:
            answer = await http_exception_handler(request, error)
        except RequestValidationError as error:
            answer = await request_validation_exception_handler(request, error)
        await answer(scope, receive, send)
