"""The Firecracker driver's watcher: observations from the supervisors' files, and the timers.

Every ``poll_interval`` one :meth:`Watcher.tick` goes over the registry's running VMs and

- wipes the JIT config from MMDS once the guest agent acknowledged its boot data;
- stops (SIGKILL) a VM whose agent has not acknowledged within ``boot_timeout`` seconds of
  ``InstanceStart``, saying so in the observation's ``detail``;
- keeps a VM whose job did not succeed until ``keep_until`` (``keep_on_failure_minutes``): it is
  reported as ``kept_until``, a graceful stop is deferred to then, and at its end the watcher
  stops the VM itself (``SendCtrlAltDel``, SIGKILL after the grace) even if the guest did not;
- escalates a graceful stop to SIGKILL after ``stop_grace_seconds``.

It only reads small files and ``/proc``; nothing here blocks the event loop for long.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from blacksmith_mini.vm import driver
from blacksmith_mini.vm.firecracker import api, markers, registry, state
from blacksmith_mini.vm.firecracker.config import FirecrackerSettings

log = logging.getLogger(__name__)


def boot_timeout_detail(seconds: float) -> str:
    """The ``detail`` of a VM stopped because its guest agent never acknowledged."""
    return (
        f"the guest agent did not acknowledge its boot data within {seconds:g} s of "
        "InstanceStart, so the VM was stopped; see the VM's console for how far the guest got "
        "(fix: check that the image's kernel boots and that blacksmith-agent is enabled in it, "
        f"or raise [vm.firecracker] boot_timeout = {seconds:g})"
    )


class Watcher:
    """Turns records and supervisor files into observations; enforces the timers above."""

    def __init__(
        self,
        *,
        registry: registry.Registry,
        settings: FirecrackerSettings,
        notify: Callable[[], None],
    ) -> None:
        self.registry = registry
        self.settings = settings
        self._notify = notify

    # -- observations -----------------------------------------------------------------------

    def observe(self, record: state.VmRecord, *, now: float | None = None) -> driver.VmObservation:
        """What can be seen of ``record``'s VM right now."""
        now = time.time() if now is None else now
        events = state.read_events(record.dir)
        exited = state.read_exit(record.dir)
        alive = self.registry.alive(record)
        exit_code = exit_signal = ended_at = None
        if not alive:
            if exited is not None:
                exit_code, exit_signal = exited.get("exit_code"), exited.get("exit_signal")
                ended_at = exited.get("time")
            elif record.kill_sent_at is not None:
                exit_signal, ended_at = int(signal.SIGKILL), record.kill_sent_at
            elif record.phase != "starting":
                record.detail = record.detail or "the VM's supervisor vanished"
        kept_until = _kept_until(record, alive=alive, now=now)
        detail = record.detail or record.start_path
        if kept_until is not None:
            detail = f"kept for debugging until {time.ctime(kept_until)}"
        return driver.VmObservation(
            vm_id=record.vm_id,
            name=record.name,
            alive=alive,
            started_at=record.started_at,
            pid=state.read_child_pid(record.dir) or record.supervisor_pid,
            ip=record.net.guest_ip,
            runner_online=markers.RUNNER_ONLINE in events,
            job_started=markers.JOB_STARTED in events,
            job_finished=markers.JOB_FINISHED in events,
            exit_code=exit_code,
            exit_signal=exit_signal,
            ended_at=ended_at,
            detail=detail,
            kept_until=kept_until,
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, poll_interval: float) -> None:
        """Tick forever (cancel to stop)."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("firecracker watcher tick failed")
            await anyio.sleep(poll_interval)

    async def tick(self) -> None:
        """One pass; calls ``notify`` if any observation changed."""
        now = time.time()
        for record in self.registry.records():
            if record.phase == "starting" or not self.registry.alive(record):
                continue
            events = state.read_events(record.dir)
            if not record.mmds_wiped and markers.BOOT_DATA_READ_EVENT in events:
                await self._wipe_mmds(record)
            self._note_failure(record, events)
            if self._boot_timed_out(record, events, now=now):
                continue
            await self._end_keep(record, now=now)
            if record.stop_requested_at is not None and record.kill_sent_at is None:
                self._escalate(record, now=now)
        changed = False
        for record in self.registry.records():
            changed |= self.registry.changed(record.vm_id, self.observe(record, now=now))
        if changed:
            self._notify()

    # -- stopping ---------------------------------------------------------------------------

    def in_keep(self, record: state.VmRecord, *, now: float) -> bool:
        """The VM is being kept for debugging right now."""
        return record.keep_until is not None and now < record.keep_until

    async def graceful_stop(self, record: state.VmRecord, *, now: float) -> None:
        """``SendCtrlAltDel`` (the watcher SIGKILLs after the grace); kill if the API fails."""
        record.stop_requested_at = now
        record.save()
        try:
            await self._api(record, lambda client: client.send_ctrl_alt_del())
        except api.FirecrackerApiError as exc:
            if self.registry.alive(record):  # else: it exited on its own meanwhile
                log.warning("vm %s: graceful stop failed (%s), killing", record.name, exc)
                self.registry.kill(record)

    def _note_failure(self, record: state.VmRecord, events: dict[str, dict[str, Any]]) -> None:
        finished = events.get(markers.JOB_FINISHED)
        keep_minutes = self.settings.keep_on_failure_minutes
        if (
            finished is None
            or record.keep_until is not None
            or keep_minutes <= 0
            or finished.get("detail") == "Succeeded"
            or record.stop_requested_at is not None  # already being stopped
        ):
            return
        record.keep_until = float(finished["time"]) + keep_minutes * 60
        record.save()
        log.info("vm %s: job failed, kept until %s", record.name, time.ctime(record.keep_until))

    def _boot_timed_out(
        self, record: state.VmRecord, events: dict[str, dict[str, Any]], *, now: float
    ) -> bool:
        timeout = self.settings.boot_timeout
        if (
            record.instance_started_at is None
            or markers.BOOT_DATA_READ_EVENT in events
            or record.kill_sent_at is not None
            or now - record.instance_started_at < timeout
        ):
            return False
        log.warning("vm %s: no boot-data acknowledgement after %gs, killing", record.name, timeout)
        record.detail = boot_timeout_detail(timeout)
        record.save()
        self.registry.kill(record)
        return True

    async def _end_keep(self, record: state.VmRecord, *, now: float) -> None:
        keep_until = record.keep_until
        if keep_until is None or now < keep_until or record.kill_sent_at is not None:
            return
        if record.stop_requested_at is not None and record.stop_requested_at >= keep_until:
            return  # already ending
        log.info("vm %s: the keep on failure is over, stopping it", record.name)
        await self.graceful_stop(record, now=now)

    def _escalate(self, record: state.VmRecord, *, now: float) -> None:
        assert record.stop_requested_at is not None
        if self.in_keep(record, now=now):
            return  # a stop deferred to the keep's end
        if now - record.stop_requested_at >= self.settings.stop_grace_seconds:
            log.info(
                "vm %s: no exit %.0fs after SendCtrlAltDel, killing",
                record.name,
                self.settings.stop_grace_seconds,
            )
            self.registry.kill(record)

    # -- MMDS -------------------------------------------------------------------------------

    async def _wipe_mmds(self, record: state.VmRecord) -> None:
        try:
            await self._api(record, lambda client: client.put_mmds(record.public_mmds))
        except api.FirecrackerApiError as exc:
            log.warning("vm %s: wiping MMDS failed: %s", record.name, exc)
            return
        record.mmds_wiped = True
        record.save()

    async def _api(self, record: state.VmRecord, call: Callable[[api.FirecrackerApi], Any]) -> None:
        client = api.FirecrackerApi(
            socket_path=Path(record.socket), timeout=self.settings.api_timeout
        )
        try:
            await call(client)
        finally:
            await client.aclose()


def _kept_until(record: state.VmRecord, *, alive: bool, now: float) -> float | None:
    if alive and record.keep_until is not None and now < record.keep_until:
        return record.keep_until
    return None
