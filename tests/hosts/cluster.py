"""A whole multi-host installation as real processes, for the multi-host fault suite.

- ``github``: the simulated GitHub, served by ``blacksmith-mini up --simulate`` with
  ``max_vms = 0`` (its own loop starts nothing); everything else talks to its ``/_sim`` API
  with a token, as it would to GitHub.
- two control-plane replicas (``up`` with ``vm.driver = "remote"``) sharing one PostgreSQL
  database made for the test;
- three agents, each in its own network namespace on a bridge (``bmbr0``, 10.77.0.0/24), so
  an agent's link can be cut (``cut``/``restore``) while the control plane stays up.

Processes bind 10.77.0.1 (not loopback), so every server has API and admin tokens; agents use
their host tokens.
"""

from __future__ import annotations

import contextlib
import pathlib
import signal
import subprocess
import sys
import uuid
from typing import Any

from hosts.harness import AgentProcess
from server.harness import Server, free_port, kill_all, sim_state, wait_for

BRIDGE = "bmbr0"
BRIDGE_IP = "10.77.0.1"
TOKEN = "cluster-test-token"
GITHUB_TOKEN = "sim-github-token"
LEASE_SECONDS = 5
START_SECONDS = 90.0  # a process starts in 2 s alone, much later on a loaded 2-core machine


def run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


class Net:
    """The bridge and one namespace per agent (root only)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def up(self) -> None:
        self.down()
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        for index in range(1, self.count + 1):
            ns, outside = f"bmag{index}", f"bmv{index}"
            run("ip", "netns", "add", ns)
            run("ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", ns)
            run("ip", "link", "set", outside, "master", BRIDGE)
            run("ip", "link", "set", outside, "up")
            run("ip", "-n", ns, "addr", "add", f"10.77.0.{10 + index}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")

    def cut(self, index: int) -> None:
        run("ip", "link", "set", f"bmv{index}", "down")

    def restore(self, index: int) -> None:
        run("ip", "link", "set", f"bmv{index}", "up")

    def down(self) -> None:
        for index in range(1, self.count + 1):
            subprocess.run(["ip", "netns", "del", f"bmag{index}"], capture_output=True)
            subprocess.run(["ip", "link", "del", f"bmv{index}"], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


class Process(Server):
    """A server on the bridge's address, with tokens (a non-loopback bind needs them)."""

    def __init__(self, data_dir: pathlib.Path, *, simulate: bool, **env: str | None) -> None:
        super().__init__(
            data_dir,
            port=free_port(),
            BLACKSMITH_SERVER__HOST=BRIDGE_IP,
            BLACKSMITH_SERVER__API_TOKEN=TOKEN,
            BLACKSMITH_SERVER__ADMIN_TOKEN=TOKEN,
            BLACKSMITH_SERVER__ON_SHUTDOWN="leave",
            GITHUB_TOKEN=GITHUB_TOKEN,
            **env,
        )
        self.simulate = simulate
        self.headers = {"authorization": f"Bearer {TOKEN}"}

    @property
    def url(self) -> str:
        return f"http://{BRIDGE_IP}:{self.port}"

    def command(self) -> list[str]:
        argv = super().command()
        return argv if self.simulate else [a for a in argv if a != "--simulate"]


class Cluster:
    def __init__(self, root: pathlib.Path, *, database_url: str, agents: int = 3) -> None:
        self.root = root
        self.net = Net(agents)
        self.database = f"bm_cluster_{uuid.uuid4().hex[:8]}"
        self.admin_url = database_url
        self.url = database_url.rsplit("/", 1)[0] + "/" + self.database
        self.github = Process(
            root / "github",
            simulate=True,
            MAX_VMS="0",
            BLACKSMITH_SIMULATOR__RATE_PER_MIN="0",
            BLACKSMITH_SIMULATOR__WEBHOOKS="false",
            BLACKSMITH_SIMULATOR__LAG_SECONDS="0.5",
        )
        self.replicas: list[Process] = []
        self.agents: list[AgentProcess] = []
        self.agent_count = agents

    # --- set-up and tear-down --------------------------------------------------------------

    def start(self) -> Cluster:
        self.net.up()
        _psql(self.admin_url, f"CREATE DATABASE {self.database}")
        self.github.start(timeout=START_SECONDS)
        self.replicas = [self._replica(index) for index in (1, 2)]
        for replica in self.replicas:
            replica.start(timeout=START_SECONDS)
        for index in range(1, self.agent_count + 1):
            self.add_agent(index)
        return self

    def _replica(self, index: int) -> Process:
        return Process(
            self.root / f"replica{index}",
            simulate=False,
            BLACKSMITH_DATABASE_URL=self.url,
            BLACKSMITH_VM__DRIVER="remote",
            BLACKSMITH_VM__MAX_VMS="12",
            BLACKSMITH_GITHUB__API_URL=f"{self.github.url}/_sim",
            BLACKSMITH_GITHUB__POLL_INTERVAL="1",
            BLACKSMITH_HOSTS__LEASE_SECONDS=str(LEASE_SECONDS),
            BLACKSMITH_HOSTS__HEARTBEAT_SECONDS="1",
            REPO_OWNER="acme",
            REPO_NAME="app",
            BLACKSMITH_POOLS='[{"name": "default", "rerun_infrastructure_failures": true}]',
        )

    def add_agent(self, index: int) -> AgentProcess:
        name = f"h{index}"
        status, answer = self.replicas[0].request("POST", "/api/hosts", {"name": name})
        assert status == 201, (status, answer)
        token_file = self.root / f"{name}.token"
        token_file.write_text(answer["token"])
        token_file.chmod(0o600)
        agent = AgentProcess(
            name=name,
            url=self.replicas[(index - 1) % 2].url,  # agents talk to either replica
            token_file=token_file,
            data_dir=self.root / f"host-{name}",
            vcpus=4,
            wrap=["ip", "netns", "exec", f"bmag{index}"],
        ).start()
        self.agents.append(agent)
        self.wait_hosts_up([name])
        return agent

    def stop(self) -> None:
        for agent in self.agents:
            agent.cleanup()
        for server in [*self.replicas, self.github]:
            if server.process is not None and server.process.poll() is None:
                server.process.send_signal(signal.SIGKILL)
                server.process.wait(timeout=15)
        for agent in self.agents:
            kill_all(agent.vm_processes())
        self.net.down()
        with contextlib.suppress(subprocess.CalledProcessError):
            _psql(self.admin_url, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")

    # --- looking ---------------------------------------------------------------------------

    def any_replica(self) -> Process:
        for replica in self.replicas:
            if replica.process is not None and replica.process.poll() is None:
                status, _ = replica.request("GET", "/api/health")
                if status in (200, 503):
                    return replica
        raise AssertionError("no replica answers")

    def hosts(self) -> dict[str, dict[str, Any]]:
        status, answer = self.any_replica().request("GET", "/api/hosts")
        assert status == 200, answer
        return {host["name"]: host for host in answer["hosts"]}

    def wait_hosts_up(self, names: list[str], *, timeout: float = 40) -> None:
        wait_for(
            lambda: all(self.hosts().get(n, {}).get("state") == "up" for n in names),
            timeout=timeout,
            what=f"hosts {names} up",
        )

    def leader(self) -> Process | None:
        """The replica whose log says it leads now (the last election line is its)."""
        best: tuple[float, Process] | None = None
        for replica in self.replicas:
            if replica.process is None or replica.process.poll() is not None:
                continue
            text = replica.log.read_text(errors="replace")
            elected, deposed = text.rfind("elected to lead"), text.rfind("no longer leading")
            if elected > deposed:
                at = replica.log.stat().st_mtime
                if best is None or at > best[0]:
                    best = (at, replica)
        return best[1] if best else None

    def queue(self, count: int, *, duration: float) -> list[int]:
        ids = []
        for _ in range(count):
            status, answer = self.github.request(
                "POST", "/api/simulator/jobs", {"duration_seconds": duration}
            )
            assert status == 201, answer
            ids.append(int(answer["id"]))
        return ids

    def sim(self) -> dict[str, Any]:
        return sim_state(self.github.data_dir)

    def all_done(self, job_ids: list[int]) -> bool:
        jobs = self.sim()["jobs"]
        return all(jobs.get(str(j), {}).get("status") == "completed" for j in job_ids)

    def leaks(self) -> dict[str, int]:
        """VM processes and dirs on hosts with no active VM, runners at GitHub of no VM."""
        status, answer = self.any_replica().request("GET", "/api/vms")
        assert status == 200, answer
        names = {vm["name"] for vm in answer["vms"]}
        dirs = [d for agent in self.agents for d in agent.vm_dirs() if d not in names]
        runners = [r["name"] for r in self.sim()["runners"].values() if r["name"] not in names]
        processes = sum(len(a.vm_processes()) for a in self.agents) if not names else 0
        return {
            "active_vms": len(names),
            "vm_dirs": len(dirs),
            "vm_processes": processes,
            "runners": len(runners),
        }


def _psql(url: str, sql: str) -> None:
    code = (
        "import asyncio, asyncpg, sys\n"
        "async def main():\n"
        "    c = await asyncpg.connect(sys.argv[1])\n"
        "    await c.execute(sys.argv[2])\n"
        "    await c.close()\n"
        "asyncio.run(main())\n"
    )
    subprocess.run([sys.executable, "-c", code, url, sql], check=True, capture_output=True)
