"""Operator actions (admin): drain and resume, stop one VM, pause, resume and resize pools.

Each answers with what it changed, is recorded as an ``operator.*`` event with who did it
(the token used, and ``X-Blacksmith-Actor`` if sent) and why (``reason``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Query, Request

from blacksmith_mini.api import convert, schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.control import operator as operator_mod

router = APIRouter(tags=["operator"])
T = TypeVar("T")
ERRORS: dict[int | str, dict[str, Any]] = {
    **schemas.CHANGE_ERRORS,
    404: {"model": schemas.ErrorResponse},
    409: {"model": schemas.ErrorResponse},
}


def _actor(request: Request) -> str:
    return str(getattr(request.state, "actor", "local operator"))


def _control(runtime: RuntimeDep) -> schemas.ControlState:
    policy = runtime.loop.policy
    last = runtime.loop.operator.state.get("draining", {})
    return schemas.ControlState(
        draining=policy.draining,
        draining_since=last.get("at"),
        draining_by=last.get("by"),
        draining_reason=last.get("reason") or None,
        paused_pools=sorted(policy.paused_pools),
        pools=[
            convert.pool_limits(pool, paused=pool.name in policy.paused_pools)
            for pool in policy.pools
        ],
    )


@router.get("/api/control", response_model=schemas.ControlState, responses=schemas.READ_ERRORS)
async def get_control(runtime: RuntimeDep) -> schemas.ControlState:
    """Draining, paused pools and pool limits as in force now."""
    return _control(runtime)


@router.get("/api/audit", response_model=schemas.AuditResponse, responses=schemas.READ_ERRORS)
async def get_audit(
    runtime: RuntimeDep, limit: int = Query(default=100, ge=1, le=1000)
) -> schemas.AuditResponse:
    """Operator actions, newest first: who did what, when and why."""
    events = await runtime.store.events(kind_prefix="operator.", limit=limit)
    return schemas.AuditResponse(events=[convert.event_out(e) for e in reversed(events)])


@router.post("/api/control/drain", response_model=schemas.ControlState, responses=ERRORS)
async def drain(
    runtime: RuntimeDep, request: Request, body: schemas.OperatorRequest
) -> schemas.ControlState:
    """Start no new VMs; running jobs finish; idle VMs are stopped."""
    await runtime.loop.operator.drain(actor=_actor(request), reason=body.reason)
    return _control(runtime)


@router.post("/api/control/resume", response_model=schemas.ControlState, responses=ERRORS)
async def resume(
    runtime: RuntimeDep, request: Request, body: schemas.OperatorRequest
) -> schemas.ControlState:
    """Undo a drain."""
    await runtime.loop.operator.resume(actor=_actor(request), reason=body.reason)
    return _control(runtime)


@router.post("/api/pools/{name}/pause", response_model=schemas.ControlState, responses=ERRORS)
async def pause_pool(
    runtime: RuntimeDep,
    request: Request,
    body: schemas.OperatorRequest,
    name: str = Path(max_length=64),
) -> schemas.ControlState:
    """Start no new VMs in this pool."""
    await _run(
        runtime.loop.operator.pause_pool(
            name, paused=True, actor=_actor(request), reason=body.reason
        )
    )
    return _control(runtime)


@router.post("/api/pools/{name}/resume", response_model=schemas.ControlState, responses=ERRORS)
async def resume_pool(
    runtime: RuntimeDep,
    request: Request,
    body: schemas.OperatorRequest,
    name: str = Path(max_length=64),
) -> schemas.ControlState:
    """Undo a pool pause."""
    await _run(
        runtime.loop.operator.pause_pool(
            name, paused=False, actor=_actor(request), reason=body.reason
        )
    )
    return _control(runtime)


@router.patch("/api/pools/{name}", response_model=schemas.ControlState, responses=ERRORS)
async def set_pool_limits(
    runtime: RuntimeDep,
    request: Request,
    body: schemas.PoolLimitsRequest,
    name: str = Path(max_length=64),
) -> schemas.ControlState:
    """Change a pool's warm minimum or maximum at run time (kept across restarts); 409 if
    ``min_idle`` would exceed ``max_vms``."""
    await _run(
        runtime.loop.operator.set_pool_limits(
            name,
            min_idle=body.min_idle,
            max_vms=body.max_vms,
            actor=_actor(request),
            reason=body.reason,
        )
    )
    return _control(runtime)


@router.post("/api/vms/{vm_id:int}/stop", response_model=schemas.VmOut, responses=ERRORS)
async def stop_vm(
    runtime: RuntimeDep,
    request: Request,
    body: schemas.StopVmRequest,
    vm_id: int = Path(ge=1, le=2**31 - 1),
) -> schemas.VmOut:
    """Stop one VM; a busy VM is refused (409) unless ``force`` is true."""
    vm = await _run(
        runtime.loop.operator.stop_vm(
            vm_id, force=body.force, actor=_actor(request), reason=body.reason
        )
    )
    view = runtime.loop.view
    return convert.vm_out(
        vm,
        now=view.at,
        policy=view.policy,
        pid=view.pids.get(vm_id),
        kept_until=view.kept.get(vm_id),
    )


async def _run(action: Awaitable[T]) -> T:
    """Run an operator action; a refusal is its status (404: no such pool or VM; 409: the
    current state forbids it). ``min_idle`` above ``max_vms`` (422 in ``control.operator``)
    is a 409 here: which limits are allowed depends on the pool's current ones, which the
    request schema cannot state."""
    try:
        return await action
    except operator_mod.Refused as exc:
        status = 409 if exc.status == 422 else exc.status
        raise HTTPException(status_code=status, detail=str(exc)) from exc
