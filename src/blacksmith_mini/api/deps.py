"""``Annotated`` dependencies the routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from blacksmith_mini.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime. ``async`` although it awaits nothing: FastAPI runs a plain ``def``
    dependency in its thread pool, a hand-off per request on every route."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:  # pragma: no cover - only before start-up finished
        raise HTTPException(status_code=503, detail="the control plane is starting")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
