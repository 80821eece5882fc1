"""The composition root: builds the store, GitHub client, VM driver, simulator and loop from
settings, and starts and stops them in order. The API's lifespan owns one ``Runtime``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
import time
from collections.abc import Awaitable

import httpx2

from blacksmith_mini import runtime_keys
from blacksmith_mini import settings as settings_mod
from blacksmith_mini.cache import host as cache_host
from blacksmith_mini.cache import prometheus as cache_prometheus
from blacksmith_mini.control import cache_claims, leadership, reconciler, replicas
from blacksmith_mini.domain import placement
from blacksmith_mini.domain.hostset import HostPlan
from blacksmith_mini.github import auth, errors, redelivery
from blacksmith_mini.github import client as github_client
from blacksmith_mini.simulator import faults, github_api, state, webhook_sender, workload
from blacksmith_mini.store import beatcache, lease, notify, repository
from blacksmith_mini.store import engine as engine_mod
from blacksmith_mini.vm import driver as vm_driver
from blacksmith_mini.vm import local
from blacksmith_mini.vm.remote import driver as remote_driver
from blacksmith_mini.vm.remote import wakeups

log = logging.getLogger(__name__)
SIMULATED_API_URL = "http://simulated-github.invalid"
SIMULATED_APP_ID = "424242"
WEBHOOK_PATH = "/api/webhooks/github"


class Simulation:
    """The embedded fake GitHub, its simulated runners' broker, webhooks and workload."""

    def __init__(self, settings: settings_mod.Settings, *, webhook_secret: str | None) -> None:
        host = settings.server.host
        wildcard = host in ("0.0.0.0", "::", "localhost")  # noqa: S104 - we read, not bind
        reachable = "127.0.0.1" if wildcard else host
        if ":" in reachable:
            reachable = f"[{reachable}]"
        config = settings.simulator
        repositories = (
            list(config.repositories) if settings.github.organization else list(settings.scopes())
        )
        # A configured GITHUB_TOKEN is what the simulated GitHub accepts (and what tests look
        # for in logs and VMs); otherwise a random one.
        self.token = settings.github.resolved_token() or secrets.token_urlsafe(24)
        self.state = state.SimState(
            repositories=repositories,
            broker_url=f"http://{reachable}:{settings.server.port}/_sim/broker",
            lag_seconds=config.lag_seconds,
        )
        self.state.attach(settings.data_dir / "simulated-github.json")
        self.faults = github_api.Faults()
        self.private_key: str | None = None
        self.app: github_api.SimApp | None = None
        if config.app_auth:
            self.private_key, public = runtime_keys.rsa_pair(
                settings.data_dir / "simulated-app-key.pem"
            )
            self.app = github_api.SimApp(
                app_id=SIMULATED_APP_ID,
                public_key_pem=public,
                token_ttl_seconds=config.token_ttl_seconds,
            )
        self.sender: webhook_sender.WebhookSender | None = None
        if config.webhooks and webhook_secret:
            self.sender = webhook_sender.WebhookSender(
                self.state,
                url=f"http://blacksmith.local{WEBHOOK_PATH}",
                secret=webhook_secret,
                chaos=webhook_sender.Chaos(
                    drop_ratio=config.webhook_drop_ratio,
                    duplicate_ratio=config.webhook_duplicate_ratio,
                    max_delay_seconds=config.webhook_max_delay,
                    seed=config.seed,
                ),
            )
        self.api = github_api.create_app(
            self.state, token=self.token, faults=self.faults, sim_app=self.app, sender=self.sender
        )
        self.workload = workload.Workload(self.state, config)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self.workload.run(), name="sim-workload"),
            asyncio.create_task(self._sweep(), name="sim-sweep"),
        ]

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            self.state.sweep_lost()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.sender is not None:
            await self.sender.close()


class Runtime:
    def __init__(self, settings: settings_mod.Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.webhook_secret = settings.github.resolved_webhook_secret()
        if settings.simulate and settings.simulator.webhooks and self.webhook_secret is None:
            self.webhook_secret = secrets.token_urlsafe(24)
        self.store = repository.Store(settings.resolved_database_url())
        self.notifier = notify.notifier_for(self.store.engine)
        self._announcing: set[asyncio.Task[None]] = set()
        self.replica: replicas.Replica | None = None
        self.leader: leadership.Leader | None = None
        loop_store = self.store
        shared: replicas.SharedWakeups | None = None
        if self.store.dialect == "postgresql":  # replicas may share it: lead only when elected
            self.leases = lease.LeaseStore(engine_mod.create_engine(self.store.url))
            self.leader = leadership.Leadership(
                self.leases,
                holder=leadership.replica_id(),
                on_elected=self._elected,
                on_deposed=self._deposed,
            )
            loop_store = self.store.fenced(self.leader.fence)
            shared = replicas.SharedWakeups(self.notifier)
        self.loop_store = loop_store
        self.simulation = (
            Simulation(settings, webhook_secret=self.webhook_secret) if settings.simulate else None
        )
        self.github = github_client_for(settings, self.simulation)
        self.tokens = self.github.tokens
        self.wakeups: wakeups.Wakeups = shared or wakeups.LocalWakeups()
        self.remote: remote_driver.RemoteDriver | None = None
        self.driver: vm_driver.VmDriver = self._driver()
        if settings.simulate and settings.simulator.vm_start_failure_every:
            self.driver = faults.FlakyDriver(
                self.driver, every=settings.simulator.vm_start_failure_every
            )
        self.cache_claims = cache_claims.JobClaims(
            store=self.store,
            github=self.github,
            ttl_seconds=settings.cache.token_ttl_seconds,
            wait_seconds=settings.cache.link_wait_seconds,
        )
        self.cache = self._cache_host()
        github = settings.github
        poll = github.poll_interval_with_webhooks if self.webhook_secret else github.poll_interval
        self.loop = reconciler.Reconciler(
            policy=settings.policy(),
            store=self.loop_store,
            intents_store=self.store,
            on_intent=lambda: self.announce(notify.INTENTS),
            github=self.github,
            driver=self.driver,
            config=reconciler.LoopConfig(
                tick_interval=settings.tick_interval,
                tick_duty=settings.tick_duty,
                github_poll_interval=poll,
                runner_prefix=github.runner_prefix,
                runner_group_id=github.runner_group_id,
                runner_group=github.runner_group if github.organization else None,
                ssh_public_key=runtime_keys.ssh_key(settings),
                simulate=settings.simulate,
                on_shutdown=settings.server.on_shutdown,
                drain_seconds=settings.server.drain_seconds,
                lag_allowance=settings.github.status_lag_allowance,
                cache_boot=self.cache.boot_data if self.cache is not None else None,
            ),
            host_plan=self._host_plan,
        )
        if self.leader is not None:
            self.replica = replicas.Replica(
                loop=self.loop, leader=self.leader, notifier=self.notifier, shared=shared
            )
        self._tasks: list[asyncio.Task[None]] = []

    # --- construction ----------------------------------------------------------------------

    def _driver(self) -> vm_driver.VmDriver:
        vm = self.settings.vm
        if vm.driver == "remote":
            hosts = self.settings.hosts
            self.remote = remote_driver.RemoteDriver(
                store=self.loop_store,
                wakeups=self.wakeups,
                lease_seconds=hosts.lease_seconds,
                ack_timeout=hosts.ack_timeout,
            )
            # A host found down (no heartbeat for a lease) is checked again when it returns.
            self.store.heartbeat_refresh(0.8 * hosts.lease_seconds)
            return self.remote
        if vm.driver == "firecracker":
            from blacksmith_mini.vm.firecracker import driver as fc_driver

            return fc_driver.FirecrackerDriver(
                settings=vm.firecracker.model_copy(
                    update={
                        "host_api_port": self.settings.server.port,
                        "host_cache_port": (self.settings.cache.port or None)
                        if self.settings.cache.is_on("firecracker")
                        else None,
                    }
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

    def _cache_host(self) -> cache_host.CacheHost | None:
        """The co-located Actions cache on one box (with many hosts each agent serves its own
        and asks ``cache_claims`` through ``/api/agent/cache-claim``)."""
        driver = self.settings.vm.driver
        if driver == "remote" or not self.settings.cache.is_on(driver):
            return None
        return cache_host.CacheHost(
            self.settings.cache,
            data_dir=self.settings.data_dir,
            resolve=self.cache_claims.claim,
            for_firecracker=driver == "firecracker",
        )

    async def _elected(self, lease: lease.Lease) -> None:
        assert self.replica is not None
        await self.replica.elected(lease)

    async def _deposed(self) -> None:
        assert self.replica is not None
        await self.replica.deposed()

    def announce(self, channel: str) -> None:
        """Tell the other replicas something was stored on ``channel`` (no-op on one box)."""
        if self.replica is not None:
            task = asyncio.get_running_loop().create_task(self.replica.announce(channel))
            self._announcing.add(task)
            task.add_done_callback(self._announcing.discard)

    def _host_plan(self) -> HostPlan | None:
        """Many hosts: where VMs may go, from the remote driver's last look (None: one box)."""
        driver = self.remote
        if driver is None:
            return None
        hosts = self.settings.hosts
        return driver.host_plan(
            strategy=placement.Strategy(hosts.placement),
            overcommit=placement.Overcommit(
                cpu=hosts.cpu_overcommit, memory=hosts.memory_overcommit
            ),
            vm_disk_mib=hosts.vm_disk_mib,
            weights=hosts.repository_weights,
        )

    def attach_app(self, transport: httpx2.AsyncBaseTransport) -> None:
        """Let the simulated GitHub deliver webhooks to our own app, in process."""
        if self.simulation is not None and self.simulation.sender is not None:
            self.simulation.sender.transport = transport

    # --- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()
        if self.cache is not None:
            await self.cache.start()
            self.loop.metrics.registry.register(cache_prometheus.CacheCollector(self.cache.service))
        if self.simulation is not None:
            self.simulation.start()
        if self.replica is not None:
            await self.loop.follow()  # until elected
            await self.replica.start()
        else:
            await self.loop.start()
        if isinstance(self.tokens, auth.AppInstallation) and self.webhook_secret:
            self._tasks.append(asyncio.create_task(self._redeliver(), name="redeliver"))
        if self.remote is not None:  # heartbeats answered from memory: their stamps
            self._tasks.append(asyncio.create_task(self._flush_heartbeats(), name="stamps"))

    async def _flush_heartbeats(self) -> None:
        while True:
            await asyncio.sleep(beatcache.FLUSH_SECONDS)
            try:
                await self.store.flush_heartbeats()
            except Exception:  # a database away: the next heartbeats stamp their hosts again
                log.warning("could not write heartbeat stamps", exc_info=True)

    async def _redeliver(self) -> None:
        assert isinstance(self.tokens, auth.AppInstallation)
        since = await self.store.last_delivery_at() or (time.time() - redelivery.WINDOW_SECONDS)
        try:
            await redelivery.redeliver_failed(
                self.tokens, known=self.store.known_deliveries, since=since, now=time.time()
            )
        except errors.GitHubError as exc:
            log.warning("could not ask GitHub to redeliver failed webhooks: %s", exc)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.remote is not None:
            with contextlib.suppress(Exception):
                await self.store.flush_heartbeats()
        if self.replica is not None:  # deposes (the loop follows), releases the lease
            await _bounded("giving up the lead", self.replica.stop(), seconds=10)
            await _bounded("closing the lease's connections", self.leases.engine.dispose())
        drain = self.settings.server.drain_seconds
        await _bounded("stopping the loop", self.loop.stop(), seconds=drain + 30)
        if self.simulation is not None:
            await self.simulation.stop()
        if self.cache is not None:
            await _bounded("stopping the cache", self.cache.stop(), seconds=15)
        await self.github.close()
        await _bounded("closing the database", self.store.close())


async def _bounded(what: str, step: Awaitable[None], *, seconds: float = 5.0) -> None:
    """A shutdown step that may not hang the exit (a database gone away, a stuck socket)."""
    try:
        await asyncio.wait_for(step, timeout=seconds)
    except TimeoutError:
        log.warning("%s took over %.0f s; going on with the shutdown", what, seconds)


def github_client_for(
    settings: settings_mod.Settings, simulation: Simulation | None
) -> github_client.GitHubClient:
    """The GitHub client the settings ask for: the simulator in process, or GitHub itself,
    authenticated with a token or as a GitHub App installation."""
    github = settings.github
    scopes = settings.scopes()
    discover_from = scopes[0] if scopes else None
    tokens: auth.TokenSource
    transport: httpx2.AsyncBaseTransport | None = None
    if simulation is not None:
        api_url = SIMULATED_API_URL
        transport = httpx2.ASGITransport(app=simulation.api)
        if simulation.private_key is None:
            tokens = auth.StaticToken(simulation.token)
        else:
            tokens = auth.AppInstallation(
                issuer=SIMULATED_APP_ID,
                private_key=simulation.private_key,
                installation_id=None,
                api_url=api_url,
                transport=transport,
                discover_from=discover_from,
            )
    elif github.uses_app():
        api_url = github.api_url
        tokens = auth.AppInstallation(
            issuer=github.client_id or str(github.app_id),
            private_key=github.private_key(),
            installation_id=github.installation_id,
            api_url=api_url,
            discover_from=discover_from,
        )
    else:
        api_url = github.api_url
        token = github.resolved_token()
        if token is None:
            raise settings_mod.ConfigError("no GitHub credentials: set GITHUB_TOKEN")
        tokens = auth.StaticToken(token)
    return github_client.GitHubClient(
        token=tokens,
        api_url=api_url,
        inner_transport=transport,
        mutation_spacing=0.0 if simulation is not None else 1.0,
        timeout=github.request_timeout,
    )
