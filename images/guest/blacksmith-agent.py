#!/usr/bin/env python3
"""blacksmith-agent: the guest side of Blacksmith Mini's Firecracker driver (stdlib only).

Runs once per boot (systemd unit ``blacksmith-agent.service``):

1. reads its boot data from MMDS V2 (``PUT /latest/api/token``, then ``GET
   /latest/meta-data/blacksmith`` with ``X-metadata-token``), with retries;
2. installs the SSH public keys (if any) for the runner user;
3. prints ``blacksmith-agent: boot-data-read`` on the console: the driver's acknowledgement
   signal, upon which it removes the JIT config from MMDS; the agent waits (up to
   ``--wipe-wait`` seconds) until it is gone, so no job step can read it;
4. runs ``<runner_dir>/run.sh --jitconfig <cfg>`` as the runner user; the runner's own lines
   ("Listening for Jobs", "Running job: ...", "Job ... completed with result: ...") go to the
   console, which is how the control plane follows the job;
5. when the runner exits, optionally keeps the VM for ``keep_on_failure_seconds`` if the job
   failed, then reboots (with ``reboot=k`` on the kernel command line, Firecracker then exits).

It never prints the JIT config or anything else from MMDS besides names. Environment variables
(``BLACKSMITH_MMDS_ADDRESS``, ``BLACKSMITH_RUNNER_DIR``, ``BLACKSMITH_RUNNER_USER``,
``BLACKSMITH_SSH_DIR``, ``BLACKSMITH_REBOOT_COMMAND``) override the defaults, which is how the
fake Firecracker runs this very script in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any

PREFIX = "blacksmith-agent: "
ACK = PREFIX + "boot-data-read"
RESULT = re.compile(r"Job .+ completed with result: (\w+)")
DEFAULT_MMDS = "169.254.169.254"


def say(message: str) -> None:
    """One console line of the agent's own (never a secret)."""
    sys.stdout.write(PREFIX + message + "\n")
    sys.stdout.flush()


class Mmds:
    """Minimal MMDS V2 client: session token, JSON answers, one token refresh on 401."""

    def __init__(self, address: str, *, ttl: int = 300, timeout: float = 2.0) -> None:
        self.base = f"http://{address}"
        self.ttl = ttl
        self.timeout = timeout
        self._token: str | None = None

    def _open(self, request: urllib.request.Request) -> bytes:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=self.timeout) as response:
            return bytes(response.read())

    def token(self) -> str:
        request = urllib.request.Request(
            self.base + "/latest/api/token",
            method="PUT",
            headers={"X-metadata-token-ttl-seconds": str(self.ttl)},
        )
        self._token = self._open(request).decode().strip()
        return self._token

    def get(self, path: str) -> object | None:
        """The JSON value at ``path``; None when absent (404)."""
        for attempt in (0, 1):
            token = self._token or self.token()
            request = urllib.request.Request(
                self.base + path,
                headers={"X-metadata-token": token, "Accept": "application/json"},
            )
            try:
                value: object = json.loads(self._open(request))
                return value
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 0:
                    self._token = None
                    continue
                raise
        return None


def read_boot_data(mmds: Mmds, *, tries: int = 10) -> dict[str, Any]:
    """The boot data, retried with a growing back-off (the network may still be coming up)."""
    delay = 0.5
    for attempt in range(1, tries + 1):
        try:
            data = mmds.get("/latest/meta-data/blacksmith")
            if isinstance(data, dict) and data.get("runner_jit_config"):
                return data
            say(f"boot data not there yet (try {attempt}/{tries})")
        except (OSError, ValueError) as exc:
            say(f"MMDS not reachable yet (try {attempt}/{tries}): {type(exc).__name__}")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    raise SystemExit(PREFIX + "no boot data in MMDS, giving up")


def wait_for_wipe(mmds: Mmds, *, seconds: float) -> bool:
    """Wait until the driver removed the JIT config from MMDS (True) or time ran out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = mmds.get("/latest/meta-data/blacksmith")
            if not isinstance(data, dict) or "runner_jit_config" not in data:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return False


def install_ssh_keys(keys: list[str], *, ssh_dir: str, user: pwd.struct_passwd | None) -> None:
    """Write ``authorized_keys`` (0600, owned by the runner user)."""
    if not keys:
        return
    os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
    path = os.path.join(ssh_dir, "authorized_keys")
    with open(path, "w") as f:
        f.write("\n".join(keys) + "\n")
    os.chmod(path, 0o600)
    if user is not None and os.geteuid() == 0:
        for target in (ssh_dir, path):
            os.chown(target, user.pw_uid, user.pw_gid)
    say(f"installed {len(keys)} ssh key(s)")


def run_runner(
    *, runner_dir: str, jit_config: str, user: pwd.struct_passwd | None
) -> tuple[int, str | None]:
    """Run the runner, relaying its output to the console; return (exit code, job result)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKSMITH_")}
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    child = subprocess.Popen(
        [os.path.join(runner_dir, "run.sh"), "--jitconfig", jit_config],
        cwd=runner_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user and os.geteuid() == 0 else None,
    )
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGINT))
    result = None
    assert child.stdout is not None
    for raw in child.stdout:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        match = RESULT.search(raw.decode(errors="replace"))
        if match:
            result = match.group(1)
    return child.wait(), result


def main() -> int:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Blacksmith Mini guest agent")
    parser.add_argument("--mmds-address", default=env("BLACKSMITH_MMDS_ADDRESS", DEFAULT_MMDS))
    parser.add_argument("--runner-dir", default=env("BLACKSMITH_RUNNER_DIR", "/opt/runner"))
    parser.add_argument("--runner-user", default=env("BLACKSMITH_RUNNER_USER", "runner"))
    parser.add_argument("--ssh-dir", default=env("BLACKSMITH_SSH_DIR", ""))
    parser.add_argument("--reboot-command", default=env("BLACKSMITH_REBOOT_COMMAND", "reboot"))
    parser.add_argument("--wipe-wait", type=float, default=10.0)
    parser.add_argument(
        "--setup-route",
        action="store_true",
        help="add the host route to MMDS via eth0 (in the real guest)",
    )
    args = parser.parse_args()

    if args.setup_route and args.mmds_address == DEFAULT_MMDS:
        subprocess.run(["ip", "route", "replace", DEFAULT_MMDS, "dev", "eth0"], check=False)
    user = pwd.getpwnam(args.runner_user) if args.runner_user else None
    mmds = Mmds(args.mmds_address)
    data = read_boot_data(mmds)
    jit_config = str(data["runner_jit_config"])
    say(
        f"boot data for {data.get('name')} (vm {data.get('vm_id')}, labels "
        f"{','.join(map(str, data.get('labels') or []))})"
    )
    keys = [str(k) for k in data.get("ssh_authorized_keys") or []]
    ssh_dir = args.ssh_dir or (os.path.join(user.pw_dir, ".ssh") if user else "")
    if ssh_dir:
        install_ssh_keys(keys, ssh_dir=ssh_dir, user=user)
    keep = float(data.get("keep_on_failure_seconds") or 0)
    sys.stdout.write(ACK + "\n")
    sys.stdout.flush()
    if not wait_for_wipe(mmds, seconds=args.wipe_wait):
        say("boot data still in MMDS after the ack; starting the runner anyway")
    del data
    code, result = run_runner(runner_dir=args.runner_dir, jit_config=jit_config, user=user)
    say(f"runner exited with code {code}")
    if keep > 0 and (code != 0 or result not in (None, "Succeeded")):
        say(f"job failed: keeping the VM for {keep:.0f}s for `blacksmith-mini ssh`")
        time.sleep(keep)
    if args.reboot_command != "none":
        say("rebooting")
        subprocess.run(shlex.split(args.reboot_command), check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
