"""The composition root: builds the store, GitHub client, VM driver, simulator and loop from
settings, and starts and stops them in order. The API's lifespan owns one ``Runtime``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys

import httpx2

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.control import reconciler
from blacksmith_mini.github import client as github_client
from blacksmith_mini.github import port
from blacksmith_mini.simulator import github_api, state, workload
from blacksmith_mini.store import repository
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.vm import local

log = logging.getLogger(__name__)
SIMULATED_API_URL = "http://simulated-github.invalid"


class Simulation:
    """The embedded fake GitHub, its simulated runners' broker and the workload generator."""

    def __init__(self, settings: settings_mod.Settings) -> None:
        host = settings.server.host
        wildcard = host in ("0.0.0.0", "::", "localhost")  # noqa: S104 - we read, not bind
        reachable = "127.0.0.1" if wildcard else host
        if ":" in reachable:
            reachable = f"[{reachable}]"
        self.token = secrets.token_urlsafe(24)
        self.state = state.SimState(
            repositories=list(settings.scopes()),
            broker_url=f"http://{reachable}:{settings.server.port}/_sim/broker",
        )
        self.state.attach(settings.data_dir / "simulated-github.json")
        self.faults = github_api.Faults()
        self.app = github_api.create_app(self.state, token=self.token, faults=self.faults)
        self.workload = workload.Workload(self.state, settings.simulator)
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.workload.run(), name="sim-workload")
        self._sweeper = asyncio.create_task(self._sweep(), name="sim-sweep")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            self.state.sweep_lost()

    async def stop(self) -> None:
        for task in (self._task, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class Runtime:
    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = repository.Store(settings.resolved_database_url())
        self.simulation = Simulation(settings) if settings.simulate else None
        self.github = self._github()
        self.driver = self._driver()
        self.loop = reconciler.Reconciler(
            policy=settings.policy(),
            store=self.store,
            github=self.github,
            driver=self.driver,
            config=reconciler.LoopConfig(
                tick_interval=settings.tick_interval,
                github_poll_interval=settings.github.poll_interval,
                runner_prefix=settings.github.runner_prefix,
                runner_group_id=settings.github.runner_group_id,
                ssh_public_key=_ssh_key(settings),
                simulate=settings.simulate,
            ),
        )
        if self.simulation is not None:
            self.simulation.state.listeners.append(lambda _change: self.loop.wake(github=True))

    def _github(self) -> port.GitHubPort:
        if self.simulation is not None:
            return github_client.GitHubClient(
                token=self.simulation.token,
                api_url=SIMULATED_API_URL,
                inner_transport=httpx2.ASGITransport(app=self.simulation.app),
                mutation_spacing=0.0,
            )
        token = self.settings.github.resolved_token()
        assert token is not None
        return github_client.GitHubClient(
            token=token,
            api_url=self.settings.github.api_url,
            timeout=self.settings.github.request_timeout,
        )

    def _driver(self) -> vm_driver.VmDriver:
        vm = self.settings.vm
        if vm.driver == "firecracker":
            from blacksmith_mini.vm.firecracker import driver as fc_driver

            return fc_driver.FirecrackerDriver(
                settings=vm.firecracker.model_copy(
                    update={"host_api_port": self.settings.server.port}
                ),
                data_dir=self.settings.data_dir,
            )
        if self.settings.simulate and not vm.runner_command:
            command = [
                sys.executable,
                "-m",
                "blacksmith_mini.simulator.runner",
                "--jitconfig",
                "{jitconfig}",
            ]
        else:
            command = list(vm.runner_command)
            log.warning(
                "local driver: runners run as plain host processes with NO isolation; "
                'use vm.driver = "firecracker" for untrusted workflows'
            )
        return local.LocalDriver(
            data_dir=self.settings.data_dir,
            runner_command=command,
            console_max_bytes=vm.console_max_bytes,
        )

    async def start(self) -> None:
        await self.store.open()
        if self.simulation is not None:
            self.simulation.start()
        await self.loop.start()

    async def stop(self) -> None:
        await self.loop.stop()
        if self.simulation is not None:
            await self.simulation.stop()
        await self.github.close()
        await self.store.close()


def _ssh_key(settings: settings_mod.Settings) -> str | None:
    path = settings.vm.ssh_key_path
    if path is None:
        return None
    public = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    try:
        return public.read_text().strip()
    except OSError as exc:
        raise settings_mod.ConfigError(
            f"SSH public key {public} cannot be read ({exc.strerror}); fix SSH_KEY_PATH"
        ) from exc
