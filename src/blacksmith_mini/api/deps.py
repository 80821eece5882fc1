"""``Annotated`` dependencies the routers share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from blacksmith_mini.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:  # pragma: no cover - only before start-up finished
        raise HTTPException(status_code=503, detail="the control plane is starting")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
