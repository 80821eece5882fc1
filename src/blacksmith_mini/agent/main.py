"""Building and running the agent from its settings (``blacksmith-mini agent``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

import httpx2

from blacksmith_mini.agent import agent as agent_mod
from blacksmith_mini.agent import capacity, journal
from blacksmith_mini.agent.settings import AgentSettings
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.vm import local
from blacksmith_mini.vm.remote import wire

if TYPE_CHECKING:
    from blacksmith_mini.cache.host import CacheHost


def build_driver(settings: AgentSettings) -> vm_driver.VmDriver:
    if settings.driver == "firecracker":
        from blacksmith_mini.vm.firecracker import driver as fc_driver

        cache_port = settings.cache.port if settings.cache.is_on("firecracker") else None
        return fc_driver.FirecrackerDriver(
            settings=settings.firecracker.model_copy(
                update={"host_cache_port": cache_port or None}
            ),
            data_dir=settings.data_dir,
        )
    return local.LocalDriver(
        data_dir=settings.data_dir,
        runner_command=settings.command(),
        console_max_bytes=settings.console_max_bytes,
    )


def client_for(settings: AgentSettings, *, token: str) -> httpx2.AsyncClient:
    """The agent's client of the control plane: its token on every call, connections kept
    between reports for ``wire.AGENT_IDLE_SECONDS`` (the control plane keeps them longer)."""
    return httpx2.AsyncClient(
        base_url=settings.control_plane.rstrip("/"),
        headers={"authorization": f"Bearer {token}"},
        timeout=15.0,
        limits=httpx2.Limits(keepalive_expiry=wire.AGENT_IDLE_SECONDS),
    )


async def serve(settings: AgentSettings) -> None:
    """Run the agent until SIGTERM/SIGINT (its VMs keep running for the next start to adopt)."""
    token = settings.resolved_token()
    driver = build_driver(settings)
    report = capacity.detect(
        data_dir=settings.data_dir,
        driver=settings.driver,
        vcpus=settings.vcpus,
        memory=settings.memory_mib,
        disk=settings.disk_mib,
    )
    async with client_for(settings, token=token) as client:
        agent = agent_mod.Agent(
            client=client,
            driver=driver,
            journal=journal.Journal(settings.data_dir / "agent-journal.json"),
            report=report,
        )
        cache: CacheHost | None = None
        if settings.cache.is_on(settings.driver):
            # Imported only when served: its web stack is a quarter of an idle agent's memory.
            from blacksmith_mini.agent import cache as agent_cache

            cache = agent_cache.build(
                settings.cache,
                data_dir=settings.data_dir,
                driver=settings.driver,
                client=client,
                session=lambda: agent.session,
            )
        if cache is not None:
            await cache.start()
            agent.cache_boot = cache.boot_data
        task = asyncio.create_task(agent.run())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            if cache is not None:
                await cache.stop()
