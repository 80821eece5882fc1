"""A control plane in multi-host mode and ``blacksmith-mini agent`` processes, for real.

``ControlPlane`` is ``blacksmith-mini up --simulate`` with ``vm.driver = "remote"`` and a short
lease; ``add_agent`` makes a host through ``POST /api/hosts`` and starts its agent (local
driver, the simulator's runners) as a process of its own with its own data directory.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any, Self

from server.harness import Server, kill_all, processes_under, sim_state, wait_for

LEASE_SECONDS = 4


class AgentProcess:
    def __init__(
        self,
        *,
        name: str,
        url: str,
        token_file: pathlib.Path,
        data_dir: pathlib.Path,
        vcpus: int = 4,
        memory_mib: int = 8192,
        wrap: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.extra_env = dict(env or {})  # e.g. BLACKSMITH_AGENT_CACHE__ENABLED
        self.url = url
        self.token_file = token_file
        self.data_dir = data_dir
        self.vcpus = vcpus
        self.memory_mib = memory_mib
        self.wrap = list(wrap or [])
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"agent-{name}.log"

    def command(self) -> list[str]:
        return [
            *self.wrap,
            sys.executable,
            "-m",
            "blacksmith_mini",
            "agent",
            "--control-plane",
            self.url,
            "--token-file",
            str(self.token_file),
            "--data-dir",
            str(self.data_dir),
            "--simulated-runners",
            "--vcpus",
            str(self.vcpus),
            "--memory-mib",
            str(self.memory_mib),
        ]

    def start(self) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKSMITH_")}
        env.pop("GITHUB_TOKEN", None)  # an agent holds its host token only
        env.update(self.extra_env)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command(), stdout=output, stderr=subprocess.STDOUT, env=env
            )
        return self

    def kill(self, sig: int = signal.SIGKILL, *, timeout: float = 15) -> float:
        """Signal the agent and wait for it to exit; how long that took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(sig)
        self.process.wait(timeout=timeout)
        return time.monotonic() - started

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def vm_processes(self) -> list[int]:
        return processes_under(self.data_dir)

    def vm_dirs(self) -> list[str]:
        root = self.data_dir / "vms"
        return sorted(d.name for d in root.iterdir() if d.is_dir()) if root.exists() else []

    def cleanup(self) -> None:
        if self.alive:
            with contextlib.suppress(Exception):
                self.kill(signal.SIGTERM)
        if self.alive:
            self.kill()
        kill_all(self.vm_processes())


class ControlPlane(Server):
    def __init__(self, data_dir: pathlib.Path, **env: str | None) -> None:
        super().__init__(
            data_dir,
            BLACKSMITH_VM__DRIVER="remote",
            BLACKSMITH_HOSTS__LEASE_SECONDS=str(LEASE_SECONDS),
            BLACKSMITH_HOSTS__HEARTBEAT_SECONDS="1",
            BLACKSMITH_VM__MAX_VMS="20",
            **env,
        )
        self.agents: dict[str, AgentProcess] = {}

    def add_agent(self, name: str, **options: Any) -> AgentProcess:
        status, answer = self.request("POST", "/api/hosts", {"name": name})
        assert status == 201, (status, answer)
        token_file = self.data_dir.parent / f"{name}.token"
        token_file.write_text(answer["token"])
        token_file.chmod(0o600)
        agent = AgentProcess(
            name=name,
            url=self.url,
            token_file=token_file,
            data_dir=self.data_dir.parent / f"host-{name}",
            **options,
        ).start()
        self.agents[name] = agent
        self.wait_host(name, "up")
        return agent

    def hosts(self) -> dict[str, dict[str, Any]]:
        status, answer = self.get("/api/hosts")
        assert status == 200, answer
        return {host["name"]: host for host in answer["hosts"]}

    def wait_host(self, name: str, state: str, *, timeout: float = 30) -> dict[str, Any]:
        return dict(
            wait_for(
                lambda: (h := self.hosts().get(name)) and h["state"] == state and h,
                timeout=timeout,
                what=f"host {name} to be {state}",
            )
        )

    def events(self, kind: str) -> list[str]:
        """The messages of the events of ``kind``, oldest first (read from the database)."""
        uri = f"file:{self.data_dir / 'blacksmith.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            rows = db.execute("SELECT message FROM events WHERE kind = ? ORDER BY id", (kind,))
            return [str(row[0]) for row in rows]

    def vm_rows(self) -> list[dict[str, Any]]:
        uri = f"file:{self.data_dir / 'blacksmith.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT vm_id, name, state, host, death_reason, job_id FROM vms")
            return [dict(row) for row in rows]

    def sim_runners(self) -> list[str]:
        return [r["name"] for r in sim_state(self.data_dir)["runners"].values()]

    def cleanup(self) -> None:
        for agent in self.agents.values():
            agent.cleanup()
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.stop()
