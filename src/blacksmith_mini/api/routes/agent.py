"""``/api/agent/*``: where host agents connect (protocol in ``vm.remote.wire``).

Every call carries the host's own token (``Authorization: Bearer bmh_...``), which names the
host: an agent can read only its own commands and write only its own reports. A revoked or
unknown token is 401; a message from a replaced agent session is 409 (reconnect with
``hello``); a body that breaks the protocol's bounds (negative capacity, too many VMs) is 422.

A report (every host's heartbeat, every 5 s) is the hot path: it is checked and stored by one
statement when nothing changed (``store.hosts.heartbeat``), so its token is not looked up first
(a bad body is 422 even with an unknown token) and the loop is woken only by a change it must
act on; an unknown token, a replaced session or a host found down take the slower way. Its body
is validated from its bytes in one pass (``api.raw_body``), and ``api.report_shortcut`` serves
it with this module's ``answer_report`` beneath FastAPI's routing; this router is the app's
first, so the other agent calls are matched before the rest are tried.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from blacksmith_mini.api import raw_body, schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.runtime import Runtime
from blacksmith_mini.store import hosts as host_store
from blacksmith_mini.store import observed
from blacksmith_mini.store.heartbeats import Beat
from blacksmith_mini.vm.remote import wakeups as wake
from blacksmith_mini.vm.remote import wire

router = APIRouter(tags=["agent"])
MAX_WAIT_SECONDS = 30.0
AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    **schemas.READ_ERRORS,
    401: schemas.error_response("Missing, unknown or revoked host token."),
    409: schemas.error_response(
        "The agent session was replaced (reconnect), or this control plane has no hosts."
    ),
}


async def agent_token(runtime: RuntimeDep, request: Request) -> str:
    """The bearer token of an agent's call (not yet checked: see ``agent_host``)."""
    return token_of(runtime, request.headers.get("authorization", ""))


def token_of(runtime: Runtime, authorization: str) -> str:
    """The token of an ``Authorization`` header, once this control plane takes agents."""
    if runtime.settings.vm.driver != "remote":
        raise HTTPException(
            status_code=409,
            detail='this control plane runs its VMs itself; set vm.driver = "remote" to use '
            "host agents",
        )
    token = authorization.removeprefix("Bearer ").strip()
    if not token:
        raise _unknown_token()
    return token


Bearer = Annotated[str, Depends(agent_token)]


async def agent_host(runtime: RuntimeDep, token: Bearer) -> host_store.AgentToken:
    host = await runtime.store.host_for_token(token)
    if host is None:
        raise _unknown_token()
    return host


def _unknown_token() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="missing, unknown or revoked host token: make one with "
        "`blacksmith-mini host add NAME` and give it to the agent (--token-file)",
        headers={"www-authenticate": "Bearer"},
    )


AgentHost = Annotated[host_store.AgentToken, Depends(agent_host)]


MAX_VMS_PER_REPORT = 10_000
REPORT_PATH = "/api/agent/report"
RAW_BODIES = (wire.Report,)  # bodies the routes here parse themselves (``api.raw_body``)


def _bounded(items: list[wire.Observation]) -> list[wire.Observation]:
    if len(items) > MAX_VMS_PER_REPORT:
        raise HTTPException(
            status_code=422,
            detail=f"a report may hold at most {MAX_VMS_PER_REPORT} VMs, not {len(items)}",
        )
    return items


def _observations(items: list[wire.Observation]) -> dict[str, object]:
    return {str(item.vm_id): item.model_dump() for item in _bounded(items)}


@router.post("/api/agent/hello", response_model=wire.HelloReply, responses=AGENT_ERRORS)
async def hello(
    body: wire.Hello, host: AgentHost, token: Bearer, runtime: RuntimeDep
) -> wire.HelloReply:
    """An agent (re)connects: a new session; the VMs it must kill before taking work."""
    if body.protocol not in wire.PROTOCOLS:
        raise HTTPException(
            status_code=409,
            detail=f"the agent speaks protocol {body.protocol}, this control plane "
            f"{' and '.join(map(str, wire.PROTOCOLS))}: upgrade the control plane's replicas "
            "first, then agents",
        )
    now = time.time()
    settings = runtime.settings.hosts
    session = await runtime.store.hello(
        host.name,
        report=body.report.model_dump(),
        observations=_observations(body.observations),
        now=now,
    )
    # The VMs written off, judged on the observations just stored (a report of them, as such).
    beat = await runtime.store.heartbeat(
        token, session=session, observations=None, acks=[], now=now
    )
    if beat is None:
        raise HTTPException(
            status_code=409, detail=f"host {host.name} connected again meanwhile: reconnect"
        )
    written_off = beat.written_off
    if host.down_since is not None or written_off:
        what = f"; it must kill {len(written_off)} written-off VM(s)" if written_off else ""
        await runtime.store.add_event(
            kind="host.up", message=f"host {host.name} connected (session {session}){what}", at=now
        )
    runtime.wakeups.publish(wake.REPORTS)
    runtime.wakeups.publish(wake.CHANGES)
    return wire.HelloReply(
        host=host.name,
        session=session,
        written_off=written_off,
        heartbeat_seconds=settings.heartbeat_seconds,
        lease_seconds=settings.lease_seconds,
    )


@router.post(
    REPORT_PATH,
    response_model=wire.ReportReply,
    responses=AGENT_ERRORS,
    openapi_extra=raw_body.described(wire.Report),
)
async def report(request: Request, token: Bearer, runtime: RuntimeDep) -> Response:
    """An agent's heartbeat: its VMs and the commands it carried out, in one message."""
    return await answer_report(runtime, token, raw=await request.body())


async def answer_report(runtime: Runtime, token: str, *, raw: bytes) -> Response:
    """``POST /api/agent/report`` (``raw``, its body; ``token``, the caller's): served by the
    route above and, beneath FastAPI's routing, by ``api.report_shortcut``. The reply is a
    ``wire.ReportReply``, sent as built (its model validated it)."""
    body = raw_body.parsed(wire.Report, raw)  # a wire.Report, parsed once
    reported = body.observations
    encoded = wire.encode_observations(_bounded(reported)) if reported is not None else None
    delta = _delta(body)
    acks = [
        (ack.id, ack.model_dump(exclude={"id"}, exclude_none=True, mode="json"))
        for ack in body.acks
    ]
    now = time.time()
    beat = await runtime.store.heartbeat(
        token, session=body.session, observations=encoded, acks=acks, now=now, delta=delta
    )
    if beat is None:
        beat = await _back_up(
            runtime, token, body=body, observations=encoded, acks=acks, delta=delta
        )
    if acks:
        runtime.wakeups.publish(wake.REPORTS)  # acknowledgement waiters
    if beat.changed:
        runtime.wakeups.publish(wake.CHANGES)  # the loop: something to act on
    reply = wire.ReportReply(
        written_off=beat.written_off, lease_seconds=runtime.settings.hosts.lease_seconds
    )
    if "base" in body.model_fields_set:  # protocol 2: the version stored now
        reply.observed, reply.resend = beat.observed, beat.resend
    return Response(reply.model_dump_json(exclude_defaults=True), media_type="application/json")


def _delta(body: wire.Report) -> observed.Delta | None:
    """A report's changes against a stored version, checked for sense (422 when not)."""
    if body.base is None:
        if body.changed or body.gone:
            raise HTTPException(
                status_code=422,
                detail="a report's changed and gone VMs need the version they change (base): "
                "send the observations whole when there is none",
            )
        return None
    if body.observations is not None:
        raise HTTPException(
            status_code=422,
            detail="a report sends its observations whole or as changes of a version (base), "
            "not both",
        )
    changed = {str(item.vm_id): item.model_dump() for item in _bounded(body.changed)}
    gone = [str(vm_id) for vm_id in body.gone]
    if len(gone) > MAX_VMS_PER_REPORT or changed.keys() & set(gone):
        raise HTTPException(
            status_code=422,
            detail=f"a report's gone VMs must be at most {MAX_VMS_PER_REPORT} and none of "
            "them changed in the same report",
        )
    return observed.Delta(base=body.base, changed=changed, gone=gone)


async def _back_up(
    runtime: Runtime,
    token: str,
    *,
    body: wire.Report,
    observations: bytes | None,
    acks: list[tuple[int, dict[str, Any]]],
    delta: observed.Delta | None,
) -> Beat:
    """A report ``heartbeat`` refused: 401 (unknown token), 409 (a replaced session; or a host
    found down that sent a bare heartbeat), or a down host's report: the host is up again."""
    host = await agent_host(runtime, token)
    now = time.time()
    if host.session != body.session:
        detail = f"session {body.session} of host {host.name} was replaced by {host.session}"
    elif body.observations is None and not acks and not (delta and delta.says_something):
        detail = f"host {host.name} was found down and this report has no observations"
    elif await runtime.store.back_up(host.name, session=body.session, now=now):
        beat = await runtime.store.heartbeat(
            token, session=body.session, observations=observations, acks=acks, now=now, delta=delta
        )
        if beat is not None:
            return beat._replace(changed=True)  # the loop: its VMs can be used again
        detail = f"session {body.session} of host {host.name} is not current"
    else:
        detail = f"session {body.session} of host {host.name} is not current"
    raise HTTPException(status_code=409, detail=f"{detail}: reconnect (hello)")


@router.get("/api/agent/commands", response_model=wire.Commands, responses=AGENT_ERRORS)
async def commands(
    host: AgentHost,
    runtime: RuntimeDep,
    session: Annotated[int, Query(ge=0)],
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 0.0,
) -> wire.Commands:
    """The host's unacknowledged commands, oldest first; waits up to ``wait`` s for one."""
    if session != host.session:
        raise HTTPException(
            status_code=409,
            detail=f"session {session} of host {host.name} was replaced by session "
            f"{host.session}: reconnect (hello)",
        )
    return wire.Commands(commands=await _pending(runtime, host.name, wait=wait))


async def _pending(runtime: Runtime, host: str, *, wait: float) -> list[wire.Command]:
    deadline = time.monotonic() + wait
    seen = runtime.wakeups.counter(wake.COMMANDS)
    while True:
        pending = await runtime.store.pending_commands(host)
        left = deadline - time.monotonic()
        if pending or left <= 0:
            return [
                wire.Command.model_validate(
                    {
                        "id": c.id,
                        "key": c.key,
                        "kind": c.kind,
                        "vm_id": c.vm_id,
                        "payload": c.payload,
                    }
                )
                for c in pending
            ]
        seen = await runtime.wakeups.wait(wake.COMMANDS, after=seen, timeout=min(left, 1.0))
