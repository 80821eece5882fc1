"""Each host's reports as its agent sends them while its VMs change, for the heartbeat bench.

At 10,000 VMs a report rarely says nothing new: with jobs of about five minutes, each VM
changes some five times in its life (booted, runner online, job started, finished, exited),
so some 170 observations change a second over the fleet, about 8 in each of the 20 reports a
second that 100 hosts send every 5 s. ``CHANGED_PER_REPORT`` of a host's VMs change between
two of its reports here, in turn over its VMs.

What changes is an observation's ``detail``: stored, but nothing the planner reads, so the
reports do not wake the loop. What the loop does with a change it must act on is the
planner's cost (``hosts_plan``), whatever brought the change; this measures bringing it.

A host's reports come in the agent's three shapes: what changed against the version the
control plane holds (protocol 2: ``delta``), the observations whole (protocol 1, or a
protocol-2 agent's first report: ``whole``), nothing new (``bare``). Bodies are made before
they are sent (the bench times the control plane, not their making), each ``delta`` against
the version its predecessor leaves, reckoned here as the store reckons it
(``store.observed``); a report answered ``resend`` would mean that reckoning is wrong.
"""

from __future__ import annotations

import json
from typing import Any

from blacksmith_mini.store import observed

CHANGED_PER_REPORT = 8
Bodies = list[tuple[dict[str, str], bytes]]


class Churn:
    """Hosts' observations as their agents hold them, and as the control plane stores them."""

    def __init__(
        self,
        observations: dict[str, dict[str, Any]],
        *,
        tokens: dict[str, str],
        sessions: dict[str, int],
    ) -> None:
        self.hosts = sorted(observations)
        self.state = {name: dict(observations[name]) for name in self.hosts}
        self.version = {name: _digest(self.state[name]) for name in self.hosts}
        self.step = dict.fromkeys(self.hosts, 0)
        self.sessions = sessions
        self.headers = {
            name: {"authorization": f"Bearer {tokens[name]}", "content-type": "application/json"}
            for name in self.hosts
        }

    def bodies(self, shape: str, *, count: int) -> Bodies:
        """``count`` reports of ``shape``, the hosts in turn, each after the one before."""
        made = {"delta": self._delta, "whole": self._whole, "bare": self._bare}[shape]
        return [made(self.hosts[index % len(self.hosts)]) for index in range(count)]

    def _changes(self, name: str) -> list[dict[str, Any]]:
        state, step = self.state[name], self.step[name]
        keys = list(state)
        picked = [
            keys[(step * CHANGED_PER_REPORT + j) % len(keys)] for j in range(CHANGED_PER_REPORT)
        ]
        self.step[name] = step + 1
        changed = []
        for key in dict.fromkeys(picked):  # a host of fewer than 8 VMs: each once
            seen = state[key]
            changed.append(seen | {"detail": f"step {step}"})
            state[key] = changed[-1]
        self.version[name] = _digest(state)
        return changed

    def _delta(self, name: str) -> tuple[dict[str, str], bytes]:
        base = self.version[name]
        changed = self._changes(name)
        body = {"session": self.sessions[name], "base": base, "changed": changed, "gone": []}
        return self.headers[name], json.dumps({**body, "acks": []}).encode()

    def _whole(self, name: str) -> tuple[dict[str, str], bytes]:
        self._changes(name)
        body = {"session": self.sessions[name], "observations": list(self.state[name].values())}
        return self.headers[name], json.dumps({**body, "acks": []}).encode()

    def _bare(self, name: str) -> tuple[dict[str, str], bytes]:
        body = {"session": self.sessions[name], "base": self.version[name], "acks": []}
        return self.headers[name], json.dumps(body).encode()


def _digest(state: dict[str, Any]) -> str:
    return observed.digest(observed.encode(state))
