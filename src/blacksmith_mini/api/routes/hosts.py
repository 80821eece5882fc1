"""``/api/hosts``: the hosts VMs run on; add (a token for its agent), cordon, drain, remove.

On one box (``vm.driver`` local or firecracker) the list holds the in-process host only, and
it cannot be cordoned or removed (``blacksmith-mini drain`` stops new VMs there). With
``vm.driver = "remote"`` each host runs ``blacksmith-mini agent`` with the token ``POST
/api/hosts`` made; every change is an ``operator.host_*`` event naming who and why.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable

from fastapi import APIRouter, HTTPException, Path, Request, status

from blacksmith_mini.agent import capacity as host_capacity
from blacksmith_mini.api import host_schemas as hs
from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.domain import model
from blacksmith_mini.domain.hostbook import HostRecord, lapsed
from blacksmith_mini.runtime import Runtime
from blacksmith_mini.store import hosts as host_store

router = APIRouter(tags=["hosts"])
ERRORS = {
    **schemas.CHANGE_ERRORS,
    404: schemas.error_response("No host of that name."),
    409: schemas.error_response("Not possible in this mode or state; the detail says why."),
}
PAST = {"cordon": "cordoned", "drain": "draining", "uncordon": "uncordoned"}
HostName = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="The host's name.")


def _reserved(vms: Iterable[model.Vm]) -> hs.Resources:
    listed = list(vms)
    return hs.Resources(
        vcpus=sum(vm.vcpus for vm in listed),
        memory_mib=sum(vm.memory_mib for vm in listed),
        disk_mib=0,
    )


def _host_out(
    host: HostRecord, *, vms: list[model.Vm], now: float, lease_seconds: float
) -> hs.HostOut:
    report = host.report
    if host.revoked_at is not None:
        state: hs.HostStateName = "revoked"
    elif lapsed(host, now=now, lease_seconds=lease_seconds):
        state = "down"
    else:
        state = host.admin_state  # type: ignore[assignment]
    return hs.HostOut(
        name=host.name,
        state=state,
        admin_state=host.admin_state,
        in_process=False,
        arch=report.get("arch"),
        drivers=list(report.get("drivers", [])),
        capacity=hs.Resources(
            vcpus=report["vcpus"], memory_mib=report["memory_mib"], disk_mib=report["disk_mib"]
        )
        if "vcpus" in report
        else None,
        reserved=_reserved(vms),
        vms=len(vms),
        heartbeat_age_seconds=round(now - host.last_seen, 3) if host.last_seen else None,
        versions=dict(report.get("versions", {})),
        down_since=host.down_since,
        down_reason=_down_reason(host, now=now) if state == "down" else None,
        created_at=host.created_at,
    )


def _down_reason(host: HostRecord, *, now: float) -> str:
    if host.last_seen is None:
        return "its agent never connected"
    return host.down_reason or f"no heartbeat for {now - host.last_seen:.0f} s"


def _in_process(runtime: Runtime, vms: list[model.Vm]) -> hs.HostOut:
    settings = runtime.settings
    report = host_capacity.detect(data_dir=settings.data_dir, driver=settings.vm.driver)
    return hs.HostOut(
        name=socket.gethostname()[:63] or "this-host",
        state="draining" if runtime.loop.policy.draining else "up",
        admin_state="draining" if runtime.loop.policy.draining else "up",
        in_process=True,
        arch=report.arch,
        drivers=list(report.drivers),
        capacity=hs.Resources(
            vcpus=report.vcpus, memory_mib=report.memory_mib, disk_mib=report.disk_mib
        ),
        reserved=_reserved(vms),
        vms=len(vms),
        heartbeat_age_seconds=0.0,
        versions=report.versions,
        down_since=None,
        down_reason=None,
        created_at=None,
    )


@router.get("/api/hosts", response_model=hs.HostList, responses=schemas.READ_ERRORS)
async def list_hosts(runtime: RuntimeDep) -> hs.HostList:
    """Every host: state, capacity, what its VMs reserve, heartbeat age, versions."""
    settings = runtime.settings
    active = await runtime.store.active_vms()
    if settings.vm.driver != "remote":
        hosts = [_in_process(runtime, active)]
    else:
        now = time.time()
        hosts = [
            _host_out(
                host,
                vms=[vm for vm in active if vm.host == host.name],
                now=now,
                lease_seconds=settings.hosts.lease_seconds,
            )
            for host in await runtime.store.hosts()
        ]
    return hs.HostList(
        hosts=hosts,
        lease_seconds=settings.hosts.lease_seconds,
        placement=settings.hosts.placement,
    )


def _remote_only(runtime: Runtime) -> None:
    if runtime.settings.vm.driver != "remote":
        raise HTTPException(
            status_code=409,
            detail='one box runs its VMs in process: set vm.driver = "remote" to add hosts '
            "(use `blacksmith-mini drain` to stop new VMs here)",
        )


def _actor(request: Request) -> str:
    return str(getattr(request.state, "actor", "local operator"))


@router.post(
    "/api/hosts",
    response_model=hs.HostCreated,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def add_host(body: hs.HostCreate, runtime: RuntimeDep, request: Request) -> hs.HostCreated:
    """Register a host; its agent's token is in the answer (shown once)."""
    _remote_only(runtime)
    now = time.time()
    try:
        token = await runtime.store.add_host(body.name, now=now)
    except host_store.HostExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    await runtime.store.add_event(
        kind="operator.host_add", message=f"host {body.name} added", at=now, actor=_actor(request)
    )
    return hs.HostCreated(
        name=body.name,
        token=token,
        next_step="on the host: save the token to a file (mode 600) and run `blacksmith-mini "
        "agent --control-plane URL --token-file FILE`",
    )


async def _change(
    runtime: Runtime, name: str, *, admin_state: str, verb: str, request: Request, reason: str
) -> hs.HostOut:
    _remote_only(runtime)
    if not await runtime.store.set_admin_state(name, admin_state):
        raise HTTPException(status_code=404, detail=f"no host named {name!r}")
    why = f": {reason}" if reason else ""
    await runtime.store.add_event(
        kind=f"operator.host_{verb}",
        message=f"host {name} {PAST[verb]}{why}",
        at=time.time(),
        actor=_actor(request),
    )
    runtime.loop.wake()
    return await _one(runtime, name)


async def _one(runtime: Runtime, name: str) -> hs.HostOut:
    listed = await list_hosts(runtime)
    for host in listed.hosts:
        if host.name == name:
            return host
    raise HTTPException(status_code=404, detail=f"no host named {name!r}")


@router.post("/api/hosts/{name}/cordon", response_model=hs.HostOut, responses=ERRORS)
async def cordon_host(
    body: hs.HostAction, runtime: RuntimeDep, request: Request, name: str = HostName
) -> hs.HostOut:
    """New VMs go elsewhere; its VMs keep running."""
    return await _change(
        runtime, name, admin_state="cordoned", verb="cordon", request=request, reason=body.reason
    )


@router.post("/api/hosts/{name}/drain", response_model=hs.HostOut, responses=ERRORS)
async def drain_host(
    body: hs.HostAction, runtime: RuntimeDep, request: Request, name: str = HostName
) -> hs.HostOut:
    """New VMs go elsewhere; its idle VMs stop, busy ones finish their jobs: it empties."""
    return await _change(
        runtime, name, admin_state="draining", verb="drain", request=request, reason=body.reason
    )


@router.post("/api/hosts/{name}/uncordon", response_model=hs.HostOut, responses=ERRORS)
async def uncordon_host(
    body: hs.HostAction, runtime: RuntimeDep, request: Request, name: str = HostName
) -> hs.HostOut:
    """Undo a cordon or a drain: it takes new VMs again."""
    return await _change(
        runtime, name, admin_state="up", verb="uncordon", request=request, reason=body.reason
    )


@router.delete("/api/hosts/{name}", status_code=204, responses=ERRORS)
async def remove_host(runtime: RuntimeDep, request: Request, name: str = HostName) -> None:
    """Forget a host and end its token; refused while it has active VMs (drain it first)."""
    _remote_only(runtime)
    busy = [vm.vm_id for vm in await runtime.store.active_vms() if vm.host == name]
    if busy:
        raise HTTPException(
            status_code=409,
            detail=f"host {name} still has {len(busy)} active VM(s): drain it first "
            f"(`blacksmith-mini host drain {name}`) and wait for them to finish",
        )
    if not await runtime.store.remove_host(name):
        raise HTTPException(status_code=404, detail=f"no host named {name!r}")
    await runtime.store.add_event(
        kind="operator.host_remove",
        message=f"host {name} removed; its token no longer works",
        at=time.time(),
        actor=_actor(request),
    )
