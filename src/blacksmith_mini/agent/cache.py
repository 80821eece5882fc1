"""The Actions cache on an agent's host, so a job's cache bytes stay on the job's host.

The agent serves the same service as one box does (``cache.host.CacheHost``: its own
listener, its own secret in the agent's data dir) and mints each VM's token itself, naming
only the VM, into the start command's boot data. What a token allows is asked of the control
plane on the VM's first call (``POST /api/agent/cache-claim``; then remembered until it
expires): the agent holds no GitHub credential and cannot tell a job's repository or
branch. A refusal (no job linked yet, a VM not on this host, the control plane unreachable)
is the VM's cache call refused, which the guest's proxy takes as a miss or goes on to
GitHub's cache: no job fails because of it.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable

import httpx2

from blacksmith_mini.cache import host as cache_host
from blacksmith_mini.cache import tokens
from blacksmith_mini.settings_cache import CacheSettings
from blacksmith_mini.vm.remote import wire

CLAIM_TIMEOUT_SECONDS = 60.0  # the control plane may wait for the job's link
REMEMBERED = 4096


class ControlPlaneClaims:
    """``resolve`` for the agent's cache: the control plane's answer for one VM."""

    def __init__(self, client: httpx2.AsyncClient, *, session: Callable[[], int | None]) -> None:
        self.client = client
        self.session = session
        self._known: dict[str, tokens.Claim] = {}  # a VM runs one job: its claim stands

    async def claim(self, vm_id: str) -> tokens.Claim:
        known = self._known.get(vm_id)
        if known is not None and known.expires_at > time.time():
            return known
        found = await self._ask(vm_id)
        if len(self._known) >= REMEMBERED:
            self._known.clear()
        self._known[vm_id] = found
        return found

    async def _ask(self, vm_id: str) -> tokens.Claim:
        session = self.session()
        if session is None or not vm_id.isdigit():
            raise tokens.TokenError("this host is not connected to its control plane")
        body = wire.CacheClaimRequest(session=session, vm_id=int(vm_id)).model_dump()
        try:
            answer = await self.client.post(
                "/api/agent/cache-claim", json=body, timeout=CLAIM_TIMEOUT_SECONDS
            )
        except httpx2.HTTPError as error:
            raise tokens.TokenError(f"the control plane cannot be reached ({error})") from None
        if answer.status_code != 200:
            detail = answer.json().get("detail") if answer.content else None
            raise tokens.TokenError(f"the control plane refused: {detail or answer.status_code}")
        reply = wire.CacheClaimReply.model_validate(answer.json())
        return tokens.Claim(
            repository=reply.repository,
            write=reply.write,
            reads=tuple(reply.reads),
            expires_at=reply.expires_at,
            vm_id=vm_id,
        )


def build(
    settings: CacheSettings,
    *,
    data_dir: pathlib.Path,
    driver: str,
    client: httpx2.AsyncClient,
    session: Callable[[], int | None],
) -> cache_host.CacheHost | None:
    """The host's cache when the settings turn it on for this driver, else None."""
    if not settings.is_on(driver):
        return None
    claims = ControlPlaneClaims(client, session=session)
    return cache_host.CacheHost(
        settings, data_dir=data_dir, resolve=claims.claim, for_firecracker=driver == "firecracker"
    )
