"""``POST /api/agent/cache-claim``: a host serving the Actions cache asks what one of its VMs'
cache tokens allows (protocol in ``vm.remote.wire``).

The agent mints its VMs' tokens itself (naming only the VM) and verifies them; the control
plane alone can tell a VM's repository and branch (from the job the loop linked to it and
that job's run at GitHub: ``control.cache_claims``). A host asks only about its own VMs: a VM
on another host, or none, is 404; a VM with no claim yet (no job linked in time, GitHub
unreadable) is 409 with the reason, which the agent hands on to the VM's cache call.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from blacksmith_mini.api import schemas
from blacksmith_mini.api.deps import RuntimeDep
from blacksmith_mini.api.routes.agent import AGENT_ERRORS, AgentHost
from blacksmith_mini.cache import tokens
from blacksmith_mini.vm.remote import wire

router = APIRouter(tags=["agent"])
ERRORS = {
    **AGENT_ERRORS,
    404: schemas.error_response("No such VM on this host."),
    409: schemas.error_response(
        "The session was replaced (reconnect), or the VM has no claim yet (the reason says why)."
    ),
}


@router.post("/api/agent/cache-claim", response_model=wire.CacheClaimReply, responses=ERRORS)
async def cache_claim(
    body: wire.CacheClaimRequest, host: AgentHost, runtime: RuntimeDep
) -> wire.CacheClaimReply:
    """What VM ``vm_id``'s cache token allows: its job's repository and scopes."""
    if body.session != host.session:
        raise HTTPException(409, f"session {body.session} was replaced: reconnect (hello)")
    vm = await runtime.store.vm(body.vm_id)
    if vm is None or vm.host != host.name:
        raise HTTPException(404, f"VM {body.vm_id} is not on host {host.name}")
    try:
        claim = await runtime.cache_claims.claim(str(body.vm_id))
    except tokens.TokenError as error:
        raise HTTPException(409, str(error)) from None
    return wire.CacheClaimReply(
        repository=claim.repository,
        write=claim.write,
        reads=list(claim.reads),
        expires_at=claim.expires_at,
    )
