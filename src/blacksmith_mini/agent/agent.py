"""The host agent's loop: connect out, kill what was written off, carry out commands, report.

One session: ``hello`` (the control plane answers the VMs written off while we were away;
they are killed and released before any command is taken), then two tasks until either
fails: the command long-poll (each command carried out once, journaled, then acknowledged
in a report with the observations it changed; a start gets this host's cache in its boot
data when the host serves one, ``agent.cache``) and the heartbeat (a report every
``heartbeat_seconds``, and soon after any VM changes). A report sends the observations whole
once a session, then only what changed against the version the control plane holds
(``wire.Report``); it sends them whole again when asked (``resend``). A lost connection or
a 5xx ends the session and a new one starts after a back-off; 409 (our session was replaced)
reconnects; 401 (the token was revoked or is wrong) stops the agent with the fix. The agent
holds its host token only: no database, no GitHub credential.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from blacksmith_mini.agent import journal as journal_mod
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.vm.remote import wire
from blacksmith_mini.woken import woken

log = logging.getLogger(__name__)
POLL_WAIT_SECONDS = 25.0
REPORT_DEBOUNCE_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0


class Revoked(Exception):
    """The control plane refused our token (401)."""


class SessionReplaced(Exception):
    """The control plane answered 409: another session of this host exists."""


class Agent:
    def __init__(
        self,
        *,
        client: httpx2.AsyncClient,
        driver: vm_driver.VmDriver,
        journal: journal_mod.Journal,
        report: wire.HostReport,
        cache_boot: Callable[[int], Mapping[str, str]] | None = None,
    ) -> None:
        self.client = client
        self.driver = driver
        self.journal = journal
        self.report = report
        self.cache_boot = cache_boot  # this host's cache: a VM's boot data ``cache``
        self.session: int | None = None
        self.heartbeat_seconds = 5.0
        self.connected = asyncio.Event()
        self._changed = asyncio.Event()
        self._report_lock = asyncio.Lock()
        # What the control plane holds of our observations: (session, its version, them by
        # VM id), so a report sends only what changed since (None: send them whole).
        self._stored: tuple[int | None, str, dict[int, dict[str, Any]]] | None = None

    async def run(self) -> None:
        """Run sessions until cancelled, or until the token is refused (raises ``Revoked``)."""
        await self.driver.open()
        self.driver.on_change(self._changed.set)
        failures = 0
        try:
            while True:
                try:
                    await self._session()
                except Revoked:
                    raise
                except (httpx2.HTTPError, SessionReplaced, OSError) as exc:
                    self.connected.clear()
                    failures += 1
                    pause = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(failures, 5))
                    pause *= random.uniform(0.8, 1.2)
                    log.warning("agent session ended (%s); reconnecting in %.1f s", exc, pause)
                    await asyncio.sleep(pause)
                else:
                    failures = 0
        finally:
            await self.driver.close()

    async def _session(self) -> None:
        observations = await self._observations()
        answer = await self._post(
            "/api/agent/hello",
            {
                "report": self.report.model_dump(),
                "observations": observations,
            },
        )
        reply = wire.HelloReply.model_validate(answer)
        await self._kill(reply.written_off, why="written off while this host was away")
        self.session = reply.session
        self.heartbeat_seconds = reply.heartbeat_seconds
        self.connected.set()
        log.info("connected as host %s (session %s)", reply.host, reply.session)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._commands())
                group.create_task(self._heartbeats())
        except BaseExceptionGroup as failed:  # the first failure ends the session: raise it
            raise failed.exceptions[0] from None

    # --- commands --------------------------------------------------------------------------

    async def _commands(self) -> None:
        while True:
            response = await self.client.get(
                "/api/agent/commands",
                params={"session": self.session, "wait": POLL_WAIT_SECONDS},
                timeout=POLL_WAIT_SECONDS + 10,
            )
            batch = wire.Commands.model_validate(self._answer(response))
            acks = [await self.carry_out(command) for command in batch.commands]
            if acks:
                await self._send_report(acks)

    async def carry_out(self, command: wire.Command) -> wire.Ack:
        """Do ``command`` once: a command already journaled is answered, not redone."""
        done = self.journal.get(command.key)
        if done is not None:
            return wire.Ack.model_validate({**done, "id": command.id, "key": command.key})
        ack = await self._do(command)
        self.journal.put(command.key, ack.model_dump(exclude={"id"}, mode="json"))
        return ack

    async def _do(self, command: wire.Command) -> wire.Ack:
        base: dict[str, Any] = {"id": command.id, "key": command.key}
        try:
            if command.kind == "start":
                spec = wire.spec_from_payload(command.vm_id, command.payload)
                if self.cache_boot is not None:
                    spec = dataclasses.replace(spec, cache=self.cache_boot(spec.vm_id))
                seen = await self.driver.start(spec)
                return wire.Ack(**base, ok=True, observation=wire.observation_to_wire(seen))
            if command.kind in ("stop", "kill"):
                await self.driver.stop(command.vm_id, force=command.kind == "kill")
            elif command.kind == "release":
                await self.driver.release(command.vm_id)
            elif command.kind == "console":
                limit = int(command.payload.get("max_bytes", 16384))
                tail = await self.driver.console_tail(command.vm_id, max_bytes=limit)
                return wire.Ack(**base, ok=True, output=tail[-256 * 1024 :])
            return wire.Ack(**base, ok=True)
        except vm_driver.VmStartError as exc:
            return wire.Ack(**base, ok=False, error=str(exc)[:2000])
        except Exception as exc:  # a command must be answered, whatever broke
            log.exception("command %s failed", command.key)
            return wire.Ack(**base, ok=False, error=f"{type(exc).__name__}: {exc}"[:2000])

    async def _kill(self, vm_ids: list[int], *, why: str) -> None:
        for vm_id in vm_ids:
            log.warning("killing VM %s: %s", vm_id, why)
            await self.driver.stop(vm_id, force=True)
            await self.driver.release(vm_id)

    # --- reports ---------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            self._changed.clear()
            await self._send_report([])
            if await woken(self._changed, timeout=self.heartbeat_seconds):
                await asyncio.sleep(REPORT_DEBOUNCE_SECONDS)

    async def _send_report(self, acks: list[wire.Ack]) -> None:
        async with self._report_lock:
            seen = {item["vm_id"]: item for item in await self._observations()}
            body = {
                "session": self.session,
                "acks": [ack.model_dump(mode="json") for ack in acks],
                **self._changes(seen),
            }
            reply = wire.ReportReply.model_validate(await self._post("/api/agent/report", body))
            version = None if reply.resend else reply.observed
            self._stored = (self.session, version, seen) if version is not None else None
        if reply.resend:  # they changed a version not stored: send them whole, soon
            log.info("the control plane holds another version of our observations: resending")
            self._changed.set()
        if reply.written_off:
            await self._kill(reply.written_off, why="the control plane wrote it off")

    def _changes(self, seen: dict[int, dict[str, Any]]) -> dict[str, Any]:
        """A report's observations: whole, with no version yet (``base`` None), or what changed
        since the version the control plane holds (nothing, for a bare heartbeat)."""
        if self._stored is None or self._stored[0] != self.session:
            return {"base": None, "observations": list(seen.values())}
        _, version, before = self._stored
        changed, gone = wire.changes(before, seen)
        return {"base": version, "changed": changed, "gone": gone}

    async def _observations(self) -> list[dict[str, Any]]:
        seen = await self.driver.observe()
        return [wire.observation_to_wire(o).model_dump(mode="json") for o in seen.values()]

    # --- HTTP ------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._answer(await self.client.post(path, json=body))

    def _answer(self, response: httpx2.Response) -> Any:
        if response.status_code == 401:
            raise Revoked(
                "the control plane refused this host's token (revoked or wrong): make a new "
                "one with `blacksmith-mini host add NAME` (after `host remove NAME`)"
            )
        if response.status_code == 409:
            raise SessionReplaced(response.text[:300])
        response.raise_for_status()
        return response.json()
