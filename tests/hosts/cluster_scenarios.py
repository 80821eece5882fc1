"""The multi-host fault scenarios: each queues jobs, injects one fault, waits, and counts.

Every scenario runs on a ``cluster.Cluster`` (two replicas on PostgreSQL, three agents in
their own network namespaces, the simulated GitHub) with jobs running, and reports: jobs
queued and how many ended in success (a job GitHub failed because our host vanished counts
once its re-run succeeded: the pool opts in), jobs run twice (one job on two VMs), what leaked
(VM processes and directories on the hosts, runner registrations at GitHub) and the seconds
from the fault until every job was done and every host up again. ``bench/
multihost_fault_report.py`` writes them into docs/FAULTS.md; ``tests/hosts/test_cluster.py``
asserts them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

from blacksmith_mini.simulator.state import LOST_AFTER_SECONDS
from hosts.cluster import LEASE_SECONDS, START_SECONDS, Cluster
from server.harness import wait_for

JOB_SECONDS = 4.0
SETTLE_SECONDS = 150.0


@dataclasses.dataclass
class Outcome:
    name: str
    fault: str
    queued: int = 0
    succeeded: int = 0
    run_twice: int = 0
    leaked: dict[str, int] = dataclasses.field(default_factory=dict)
    recovered_seconds: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None

    def problems(self) -> list[str]:
        found = []
        if self.skipped:
            return found
        if self.succeeded != self.queued:
            found.append(f"{self.queued - self.succeeded} of {self.queued} jobs did not succeed")
        if self.run_twice:
            found.append(f"{self.run_twice} jobs ran twice")
        found += [f"{n} {kind} leaked" for kind, n in self.leaked.items() if n]
        if self.recovered_seconds is None:
            found.append("did not recover")
        return found


def _logical(sim: dict[str, Any]) -> dict[tuple[int, str], list[dict[str, Any]]]:
    """Jobs by (run, name): a re-run's new job belongs to its original."""
    found: dict[tuple[int, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for job in sim["jobs"].values():
        found[(int(job["run_id"]), str(job.get("name")))].append(job)
    return found


def _settle(cluster: Cluster, outcome: Outcome, *, runs: set[int], since: float) -> None:
    def done() -> bool:
        logical = _logical(cluster.sim())
        mine = [jobs for (run, _), jobs in logical.items() if run in runs]
        return len(mine) == len(runs) and all(
            any(j["status"] == "completed" and j.get("conclusion") == "success" for j in jobs)
            for jobs in mine
        )

    try:
        wait_for(done, timeout=SETTLE_SECONDS, what="every job to succeed")
        cluster.wait_hosts_up([a.name for a in cluster.agents], timeout=60)
        outcome.recovered_seconds = round(time.monotonic() - since, 1)
    except AssertionError as exc:
        outcome.notes.append(str(exc))
    logical = _logical(cluster.sim())
    outcome.succeeded = sum(
        any(j["status"] == "completed" and j.get("conclusion") == "success" for j in jobs)
        for (run, _), jobs in logical.items()
        if run in runs
    )
    outcome.run_twice = _run_twice(cluster, runs)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not any(cluster.leaks().values()), timeout=60, what="nothing left over")
    outcome.leaked = {k: v for k, v in cluster.leaks().items() if k != "active_vms"}
    outcome.leaked["active_vms_after_settling"] = cluster.leaks()["active_vms"]


def _run_twice(cluster: Cluster, runs: set[int]) -> int:
    """Jobs that more than one VM ran (each VM names the job it ran)."""
    status, answer = cluster.any_replica().request("GET", "/api/vms?include_gone=true")
    if status != 200:
        return 0
    counts = collections.Counter(vm["job_id"] for vm in answer["vms"] if vm.get("job_id"))
    jobs = cluster.sim()["jobs"]
    return sum(
        1
        for job_id, n in counts.items()
        if n > 1 and int(jobs.get(str(job_id), {}).get("run_id", 0)) in runs
    )


def _queue(cluster: Cluster, outcome: Outcome, count: int) -> set[int]:
    ids = cluster.queue(count, duration=JOB_SECONDS)
    outcome.queued = count
    jobs = cluster.sim()["jobs"]
    return {int(jobs[str(i)]["run_id"]) for i in ids}


def _busy_on(cluster: Cluster, host: str) -> None:
    wait_for(
        lambda: any(
            vm["status"] == "busy" and vm.get("host") == host
            for vm in cluster.any_replica().request("GET", "/api/vms")[1]["vms"]
        ),
        timeout=60,
        what=f"a busy VM on {host}",
    )


def agent_sigkill(cluster: Cluster) -> Outcome:
    outcome = Outcome(name="agent_sigkill", fault="SIGKILL an agent mid-job, restart it")
    runs = _queue(cluster, outcome, 6)
    _busy_on(cluster, "h1")
    started = time.monotonic()
    agent = cluster.agents[0]
    agent.kill()
    wait_for(
        lambda: cluster.hosts()["h1"]["state"] == "down",
        timeout=LEASE_SECONDS + 30,
        what="h1 down",
    )
    agent.start()
    _settle(cluster, outcome, runs=runs, since=started)
    return outcome


def link_cut(cluster: Cluster) -> Outcome:
    outcome = Outcome(name="link_cut", fault="cut an agent's link past the lease, restore it")
    runs = _queue(cluster, outcome, 6)
    _busy_on(cluster, "h2")
    started = time.monotonic()
    cluster.net.cut(2)
    wait_for(
        lambda: cluster.hosts()["h2"]["state"] == "down",
        timeout=LEASE_SECONDS + 30,
        what="h2 down",
    )
    # The fault itself: the link stays cut past the lease and past the time GitHub gives a
    # silent runner (the simulator's LOST_AFTER_SECONDS), so the job running there fails at
    # GitHub and is re-run (the pool opts in).
    time.sleep(LOST_AFTER_SECONDS + 2)
    cluster.net.restore(2)
    _settle(cluster, outcome, runs=runs, since=started)
    reran = [
        j for j in cluster.sim()["jobs"].values() if j["run_id"] in runs and j["run_attempt"] > 1
    ]
    outcome.notes.append(f"{len(reran)} job(s) failed by the cut and re-run through GitHub")
    return outcome


def leader_sigkill(cluster: Cluster) -> Outcome:
    outcome = Outcome(name="leader_sigkill", fault="SIGKILL the leading replica")
    runs = _queue(cluster, outcome, 6)
    leader = wait_for(cluster.leader, timeout=30, what="a leader")
    started = time.monotonic()
    assert leader.process is not None
    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait(timeout=15)
    wait_for(
        lambda: (found := cluster.leader()) is not None and found is not leader,
        timeout=30,
        what="another replica to lead",
    )
    outcome.notes.append(f"new leader after {time.monotonic() - started:.1f} s")
    leader.start(timeout=START_SECONDS)
    _settle(cluster, outcome, runs=runs, since=started)
    return outcome


def postgres_restart(cluster: Cluster) -> Outcome:
    outcome = Outcome(name="postgres_restart", fault="restart PostgreSQL")
    cluster_ctl = shutil.which("pg_ctlcluster")
    listed = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True)
    if cluster_ctl is None or listed.returncode != 0 or not listed.stdout.strip():
        outcome.skipped = "no pg_ctlcluster here"
        return outcome
    version, name = listed.stdout.split()[:2]
    runs = _queue(cluster, outcome, 6)
    _busy_on(cluster, "h3")
    started = time.monotonic()
    subprocess.run(
        [cluster_ctl, "--skip-systemctl-redirect", version, name, "restart"],
        check=True,
        capture_output=True,
    )
    _settle(cluster, outcome, runs=runs, since=started)
    return outcome


def rolling_restart(cluster: Cluster) -> Outcome:
    outcome = Outcome(name="rolling_restart", fault="restart every replica, then every agent")
    runs = _queue(cluster, outcome, 8)
    started = time.monotonic()
    for replica in cluster.replicas:
        took = replica.stop(timeout=60)  # SIGTERM: VMs are left running (on_shutdown = leave)
        outcome.notes.append(f"replica stopped in {took:.1f} s")
        replica.start(timeout=START_SECONDS)
    for agent in cluster.agents:
        took = agent.kill(signal.SIGTERM, timeout=60)
        outcome.notes.append(f"agent {agent.name} stopped in {took:.1f} s")
        agent.start()
        cluster.wait_hosts_up([agent.name])
    _settle(cluster, outcome, runs=runs, since=started)
    return outcome


SCENARIOS: dict[str, Callable[[Cluster], Outcome]] = {
    "agent_sigkill": agent_sigkill,
    "link_cut": link_cut,
    "leader_sigkill": leader_sigkill,
    "postgres_restart": postgres_restart,
    "rolling_restart": rolling_restart,
}
