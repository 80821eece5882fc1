"""Memory: the control plane's resident size with 100 hosts and 10,000 VMs, and an idle agent's.

- control plane: a child process (``python bench/hosts_memory.py --child DIR``) runs the real
  app (``create_app``: API, loop with the remote driver, simulated GitHub idle) on a store
  seeded beforehand in DIR (100 hosts, their hellos with every VM's observation, 10,000
  VMs); after three ticks it prints its ``VmRSS`` (and peak ``VmHWM``) from
  /proc/self/status. Seeding happens in the parent, so its garbage is not counted.
- agent: ``blacksmith-mini up --simulate`` with ``BLACKSMITH_VM__DRIVER=remote`` as a real
  server, a host made with ``POST /api/hosts``, then ``blacksmith-mini agent
  --simulated-runners`` with its token; once ``GET /api/hosts`` shows the host up and a few
  heartbeats have passed, the agent's (and, for reference, the server's) ``VmRSS`` is read.
  Then the same agent serving the host's Actions cache (``cache.enabled``, as it is by
  default with the firecracker driver): its web stack is loaded only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from common import free_port

CONTROL_PLANE_TARGET_MB, AGENT_TARGET_MB = 400.0, 60.0
# The host's Actions cache, on as with firecracker hosts (where it is on by default).
SERVING_CACHE = {"BLACKSMITH_AGENT_CACHE__ENABLED": "true", "BLACKSMITH_AGENT_CACHE__PORT": "0"}
START_SECONDS = 90.0


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no {field} for {pid}")


# --- the control plane, in a child process ---------------------------------------------------


async def _child(directory: pathlib.Path) -> None:
    """The real app (API, loop, remote driver, simulated GitHub idle) over the seeded store."""
    from blacksmith_mini import settings as settings_mod
    from blacksmith_mini.api.app import create_app

    settings = settings_mod.load(simulate=True, data_dir=directory)
    settings.simulator.rate_per_min = 0
    settings.vm.driver = "remote"
    settings.github.poll_interval = settings.github.poll_interval_with_webhooks = 3600.0
    settings.hosts.lease_seconds = 600.0
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        loop = app.state.runtime.loop
        deadline = time.monotonic() + 120
        while loop.loop_health.ticks < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        found = {
            "vms": len(loop.state.vms),
            "hosts": len(loop.hosts.hosts) if loop.hosts else 0,
            "observations": len(loop.state.facts),
            "ticks": loop.loop_health.ticks,
            "rss_mb": rss_mb(),
            "hwm_mb": rss_mb(field="VmHWM"),
        }
    print(json.dumps(found), flush=True)


def control_plane(directory: pathlib.Path) -> dict[str, Any]:
    """The child's figures, over the store seeded in ``directory`` (its data dir)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"control-plane child failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- an idle agent against a real server -----------------------------------------------------


def _request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except OSError:
        return 0, None


def _wait(check: Callable[[], bool], *, what: str, timeout: float = START_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def _process(argv: list[str], *, log: pathlib.Path, env: dict[str, str]) -> Iterator[int]:
    with log.open("ab") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def agent(directory: pathlib.Path) -> dict[str, float]:
    """RSS (MB) of an idle agent and of the server it reports to (one host, no VMs)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BLACKSMITH_VM__DRIVER": "remote",
        "BLACKSMITH_SIMULATOR__RATE_PER_MIN": "0",
        "BLACKSMITH_HOSTS__HEARTBEAT_SECONDS": "1",
    }
    module = [sys.executable, "-m", "blacksmith_mini"]
    server_argv = [*module, "up", "--simulate", "--port", str(port)]
    server_argv += ["--data-dir", str(directory / "server")]
    with _process(server_argv, log=directory / "server.log", env=env) as server:
        _wait(lambda: _request(url + "/api/health")[0] == 200, what="the server to answer")
        status, made = _request(url + "/api/hosts", "POST", {"name": "h1"})
        assert status == 201, (status, made)
        token = directory / "h1.token"
        token.write_text(made["token"])
        token.chmod(0o600)
        agent_argv = [*module, "agent", "--control-plane", url, "--token-file", str(token)]
        agent_argv += ["--data-dir", str(directory / "agent"), "--simulated-runners"]
        found: dict[str, float] = {}
        for name, extra in (("agent_mb", {}), ("agent_cache_mb", SERVING_CACHE)):
            log = directory / f"{name}.log"
            with _process(agent_argv, log=log, env={**env, **extra}) as pid:
                _wait(lambda: _host_up(url) and _beat_age(url) < 1.0, what="the host to report")
                seen = _beat_age(url)
                time.sleep(3.0)  # a few heartbeats: idle, connected, settled
                found[name] = rss_mb(pid)
                found["heartbeat_age_s"] = seen
            # Before the next agent: no reports for longer than their interval (1 s), so the
            # next "reported" is that agent's.
            _wait(lambda: _beat_age(url) > 2.5, what="the agent's reports to stop")
        return {**found, "server_mb": rss_mb(server)}


def _beat_age(url: str) -> float:
    age = _request(url + "/api/hosts")[1]["hosts"][0]["heartbeat_age_seconds"]
    return float("inf") if age is None else float(age)


def _host_up(url: str) -> bool:
    status, listed = _request(url + "/api/hosts")
    return status == 200 and any(h["state"] == "up" for h in listed["hosts"])


def show(plane: dict[str, Any], idle: dict[str, float] | None, *, error: str | None) -> list[str]:
    lines = [f"{'memory (resident)':<46} {'MB':>8} {'target':>8} {'ratio':>8}"]
    name = (
        f"control plane: {plane['hosts']} hosts, {plane['vms']:,} VMs, "
        f"{plane['observations']:,} obs"
    )
    lines.append(
        f"{name:<46} {plane['rss_mb']:>8.1f} {CONTROL_PLANE_TARGET_MB:>8.0f} "
        f"{plane['rss_mb'] / CONTROL_PLANE_TARGET_MB:>7.2f}x"
    )
    lines.append(f"{'  (its peak, VmHWM)':<46} {plane['hwm_mb']:>8.1f}")
    if idle is None:
        lines.append(f"{'idle agent':<46} failed: {error}")
        return lines
    lines.append(
        f"{'idle agent (simulated runners, connected)':<46} {idle['agent_mb']:>8.1f} "
        f"{AGENT_TARGET_MB:>8.0f} {idle['agent_mb'] / AGENT_TARGET_MB:>7.2f}x"
    )
    lines.append(
        f"{'  the same serving the Actions cache':<46} {idle['agent_cache_mb']:>8.1f} "
        f"{AGENT_TARGET_MB:>8.0f} {idle['agent_cache_mb'] / AGENT_TARGET_MB:>7.2f}x"
    )
    lines.append(f"{'  (its server: one host, no VMs)':<46} {idle['server_mb']:>8.1f}")
    return lines


if __name__ == "__main__" and sys.argv[1:2] == ["--child"]:
    asyncio.run(_child(pathlib.Path(sys.argv[2])))
