"""JSON bodies a hot route parses itself, and the OpenAPI document that still describes them.

FastAPI parses a declared body twice over: ``json.loads`` into Python objects, then pydantic's
validation of those objects. A route on the hot path (``POST /api/agent/report``: every host,
every 5 s, each report with its VMs' observations) reads the bytes instead and validates them
in one pass (``model_validate_json``); FastAPI's two passes were about a third of its CPU
(a profile of ``bench/hosts_heartbeat.py``'s route).

What a client sees does not change: a body that breaks the model is FastAPI's 422 with each
error located under ``body``; a body that is not JSON is the documented ``json_invalid`` 422;
the operation's request body is documented as the model (``described`` on the route,
``document`` on the app), so the generated TypeScript types and schemathesis see the same
document as when FastAPI parsed it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pydantic
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

COMPONENTS = "#/components/schemas/{model}"
Model = TypeVar("Model", bound=pydantic.BaseModel)


def described(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: its request body is ``model`` in JSON, required."""
    body = {"$ref": COMPONENTS.format(model=model.__name__)}
    errors = {"$ref": COMPONENTS.format(model="HTTPValidationError")}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "422": {
                "description": "Validation Error",
                "content": {"application/json": {"schema": errors}},
            }
        },
    }


def parsed(model: type[Model], raw: bytes) -> Model:
    """``raw`` validated as ``model``, or FastAPI's 422 for a bad body."""
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as error:
        raise RequestValidationError([_located(found) for found in error.errors()]) from None


def _located(error: Any) -> dict[str, Any]:
    """A validation error as FastAPI reports a body's: under ``body``, no documentation URL; a
    body that is not JSON does not echo its bytes (they may not be text)."""
    found = {key: value for key, value in error.items() if key != "url"}
    found["loc"] = ("body", *error["loc"])
    if error["type"] == "json_invalid":
        found["input"] = {}
    return found


def document(app: FastAPI, models: Sequence[type[pydantic.BaseModel]]) -> None:
    """Put ``models`` (bodies no route declares to FastAPI) into the app's OpenAPI components,
    written by FastAPI itself (from routes that would take them), so they read as before."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, found in _components(models).items():
                components.setdefault(name, found)
            schema["components"]["schemas"] = dict(sorted(components.items()))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension


def _components(models: Sequence[type[pydantic.BaseModel]]) -> dict[str, Any]:
    routes = [APIRoute(f"/{model.__name__}", _taking(model), methods=["POST"]) for model in models]
    document = get_openapi(title="bodies", version="0", routes=routes)
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def _taking(model: type[pydantic.BaseModel]) -> Callable[..., Any]:
    async def endpoint(body: Any) -> None:
        """A route that would take ``model`` as its body (never served)."""

    endpoint.__annotations__ = {"body": model, "return": None}
    return endpoint
