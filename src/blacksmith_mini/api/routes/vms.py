"""``/api/vms``: the seed's VM list, and one VM with its console tail and events."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path

from blacksmith_mini.api import convert, schemas
from blacksmith_mini.api.deps import RuntimeDep

router = APIRouter(tags=["vms"])


@router.get("/api/vms", response_model=schemas.VmListResponse, responses=schemas.READ_ERRORS)
async def list_vms(runtime: RuntimeDep, include_gone: bool = False) -> schemas.VmListResponse:
    """Active VMs (and, with ``include_gone``, the most recent gone ones)."""
    view = runtime.loop.view
    vms = view.vms if include_gone else view.active_vms
    return schemas.VmListResponse(
        vms=[
            convert.vm_out(
                vm,
                now=view.at,
                policy=view.policy,
                pid=view.pids.get(vm.vm_id),
                kept_until=view.kept.get(vm.vm_id),
            )
            for vm in vms
        ]
    )


@router.get(
    "/api/vms/{vm_id:int}",
    response_model=schemas.VmDetail,
    responses={**schemas.READ_ERRORS, 404: {"model": schemas.ErrorResponse}},
)
async def get_vm(runtime: RuntimeDep, vm_id: int = Path(ge=1, le=2**31 - 1)) -> schemas.VmDetail:
    """One VM, live or gone, with the end of its console output and its events."""
    view = runtime.loop.view
    vm = next((v for v in view.vms if v.vm_id == vm_id), None) or await runtime.store.vm(vm_id)
    if vm is None:
        raise HTTPException(status_code=404, detail=f"no VM with id {vm_id}")
    out = convert.vm_out(
        vm,
        now=view.at,
        policy=view.policy,
        pid=view.pids.get(vm_id),
        kept_until=view.kept.get(vm_id),
    )
    events = await runtime.store.events(vm_id=vm_id, limit=100)
    return schemas.VmDetail(
        **out.model_dump(),
        console_tail=await runtime.driver.console_tail(vm_id, max_bytes=16384),
        events=[convert.event_out(event) for event in events],
    )
