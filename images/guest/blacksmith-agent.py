#!/usr/bin/env python3
"""blacksmith-agent: the guest side of Blacksmith Mini's Firecracker driver (stdlib only).

Runs once per boot (systemd unit ``blacksmith-agent.service``):

1. reads its boot data from MMDS V2 (``PUT /latest/api/token``, then ``GET
   /latest/meta-data/blacksmith`` with ``X-metadata-token``), with retries; a template VM
   (``template: true``) prints ``blacksmith-agent: template-ready`` and waits there, to be
   snapshotted, for the boot data each clone restored from it gets;
2. gives this VM its own identity, as root, before anything else runs
   (``blacksmith_identity``): ``/etc/resolv.conf`` from the boot data's ``dns_servers``, the
   ``hostname``, fresh SSH host keys and ``/etc/machine-id`` (the image ships none of these,
   so no two VMs share them), and for a clone a reseeded random pool and the wall clock; then
   the runner user's SSH public keys, if any;
3. prints ``blacksmith-agent: boot-data-read`` on the console: the driver's acknowledgement
   signal, upon which it removes the JIT config from MMDS; the agent waits (up to
   ``--wipe-wait`` seconds) until it is gone, so no job step can read it;
4. starts the cache proxy (:func:`start_cache_proxy`) and runs ``<runner_dir>/run.sh
   --jitconfig <cfg>`` as the runner user, with the user's supplementary groups (``docker``)
   and self-update disabled (:func:`disable_self_update`); the runner's own lines ("Listening
   for Jobs", "Running job: ...", "Job ... completed with result: ...") go to the console,
   which is how the control plane follows the job;
5. when the runner exits, optionally keeps the VM for ``keep_on_failure_seconds`` if the job
   failed, then reboots (with ``reboot=k`` on the kernel command line, Firecracker then exits).

It never prints the JIT config or anything else from MMDS besides names. Environment variables
(``BLACKSMITH_MMDS_ADDRESS``, ``_RUNNER_DIR``, ``_RUNNER_USER``, ``_SSH_DIR``,
``_REBOOT_COMMAND``, ``_ROOT``) override the defaults, which is how the fake Firecracker and the
tests run this very script. ``--root`` prefixes every identity file; the kernel hostname is only
set when it is ``/``, so a test never renames its own machine.
"""

from __future__ import annotations

import argparse
import base64
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

from blacksmith_identity import install_ssh_keys, set_identity

PREFIX = "blacksmith-agent: "
ACK = PREFIX + "boot-data-read"
TEMPLATE = PREFIX + "template-ready"
TEMPLATE_POLL_SECONDS = 0.02
RESULT = re.compile(r"Job .+ completed with result: (\w+)")
DEFAULT_MMDS = "169.254.169.254"


def say(message: str) -> None:
    """One console line of the agent's own (never a secret)."""
    sys.stdout.write(PREFIX + message + "\n")
    sys.stdout.flush()


class Mmds:
    """Minimal MMDS V2 client: session token, JSON answers, one token refresh on 401."""

    def __init__(self, address: str, *, ttl: int = 300, timeout: float = 2.0) -> None:
        self.base, self.ttl, self.timeout = f"http://{address}", ttl, timeout
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
    """The boot data, retried with a growing back-off (the network may still be coming up).
    A template VM's (``template: true``) waits for a clone's instead (:func:`as_template`)."""
    delay = 0.5
    for attempt in range(1, tries + 1):
        try:
            data = mmds.get("/latest/meta-data/blacksmith")
            if isinstance(data, dict) and data.get("runner_jit_config"):
                return data
            if isinstance(data, dict) and data.get("template"):
                return as_template(mmds)
            say(f"boot data not there yet (try {attempt}/{tries})")
        except (OSError, ValueError) as exc:
            say(f"MMDS not reachable yet (try {attempt}/{tries}): {type(exc).__name__}")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)
    raise SystemExit(PREFIX + "no boot data in MMDS, giving up")


def as_template(mmds: Mmds) -> dict[str, Any]:
    """A template VM: say so (the driver then pauses and snapshots it) and wait, polling
    fast, for the boot data of the clone this becomes once restored: MMDS is not in a
    snapshot, so the driver puts the clone's there after the load. Identity is made after
    this returns, so every clone gets its own."""
    sys.stdout.write(TEMPLATE + "\n")
    sys.stdout.flush()
    while True:
        try:
            data = mmds.get("/latest/meta-data/blacksmith")
        except (OSError, ValueError):
            data = None  # a restored clone's MMDS session is new: the client renews it
        if isinstance(data, dict) and data.get("runner_jit_config"):
            say(f"restored from a snapshot (generation {data.get('generation', '?')})")
            return data
        time.sleep(TEMPLATE_POLL_SECONDS)


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


# Runner self-update, from actions/runner's source (v2.x, src/Runner.Listener):
# `--disableupdate` is a `config.sh` flag only (CommandSettings.cs; `run` refuses it). A JIT
# runner writes the JIT config's entries (.runner, ...) into its directory, and the listener
# sends `RunnerSettings.DisableUpdate` (ConfigurationStore.cs, `.runner`) with every
# GetMessage (MessageListener.cs), which is how the service learns not to send an update: so
# we set it in `.runner`. ACTIONS_RUNNER_INPUT_DISABLEUPDATE is the flag's environment form,
# read only by `config`, set in case a later `run` honours it. The image pins the version and
# `doctor` warns of a newer one. Whether GitHub still forces an update on JIT runners: unconfirmed.
DISABLE_UPDATE_ENV = {"ACTIONS_RUNNER_INPUT_DISABLEUPDATE": "true"}
CACHE_PROXY = "/usr/local/bin/blacksmith-cache-proxy"
CACHE_PROXY_URL = "http://127.0.0.1:51123/"


def start_cache_proxy(cache: dict[str, Any]) -> dict[str, str]:
    """Start the cache proxy with the boot data's ``cache`` (on its stdin: the token is in no
    file and no argv) and return the variables that point the runner's steps at it."""
    if not os.path.exists(CACHE_PROXY):
        return {}
    argv = [sys.executable, CACHE_PROXY, "--config-stdin"]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, start_new_session=True).stdin as given:
        given.write(json.dumps(cache).encode())  # type: ignore[union-attr]
    return {"ACTIONS_RESULTS_URL": CACHE_PROXY_URL, "ACTIONS_CACHE_URL": CACHE_PROXY_URL}


def disable_self_update(jit_config: str) -> str:
    """The JIT config with ``disableUpdate: true`` in its ``.runner``; unchanged if it is not
    the expected base64 JSON (never an error: the runner itself will say what is wrong)."""
    try:
        files = json.loads(base64.b64decode(jit_config, validate=True))
        runner = json.loads(base64.b64decode(files[".runner"], validate=True))
        if not isinstance(runner, dict):
            return jit_config
        runner["disableUpdate"] = True
        files[".runner"] = base64.b64encode(json.dumps(runner).encode()).decode()
        return base64.b64encode(json.dumps(files).encode()).decode()
    except (ValueError, TypeError, KeyError):
        return jit_config


def run_runner(
    *,
    runner_dir: str,
    jit_config: str,
    user: pwd.struct_passwd | None,
    extra_env: dict[str, str] | None = None,
) -> tuple[int, str | None]:
    """Run the runner, relaying its output to the console; return (exit code, job result)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLACKSMITH_")}
    env.update(DISABLE_UPDATE_ENV, **(extra_env or {}))
    as_user = user is not None and os.geteuid() == 0
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    # The user's own groups (docker, sudo, ...): extra_groups=[] would drop every one of them.
    groups = os.getgrouplist(user.pw_name, user.pw_gid) if user is not None and as_user else None
    # "./run.sh" from cwd (entered as root): the runner user needs no access to its parents.
    child = subprocess.Popen(
        ["./run.sh", "--jitconfig", disable_self_update(jit_config)],
        cwd=runner_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        user=user.pw_uid if user is not None and as_user else None,
        group=user.pw_gid if user is not None and as_user else None,
        extra_groups=groups,
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
    parser.add_argument("--root", default=env("BLACKSMITH_ROOT", "/"))
    parser.add_argument("--wipe-wait", type=float, default=10.0)
    parser.add_argument("--setup-route", action="store_true", help="route MMDS via eth0 (real VM)")
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
    set_identity(data, root=args.root)
    keys = [str(k) for k in data.get("ssh_authorized_keys") or []]
    ssh_dir = args.ssh_dir or (os.path.join(user.pw_dir, ".ssh") if user else "")
    if ssh_dir:
        install_ssh_keys(keys, ssh_dir=ssh_dir, user=user)
    keep = float(data.get("keep_on_failure_seconds") or 0)
    sys.stdout.write(ACK + "\n")
    sys.stdout.flush()
    if not wait_for_wipe(mmds, seconds=args.wipe_wait):
        say("boot data still in MMDS after the ack; starting the runner anyway")
    cache: dict[str, Any] = data["cache"] if isinstance(data.get("cache"), dict) else {}
    cache_env = start_cache_proxy(cache)
    del data, cache
    code, result = run_runner(
        runner_dir=args.runner_dir, jit_config=jit_config, user=user, extra_env=cache_env
    )
    say(f"runner exited with code {code}")
    if keep > 0 and (code != 0 or result not in (None, "Succeeded")):
        say(f"job failed: keeping the VM for {keep:.0f}s for `blacksmith-mini ssh`")
        time.sleep(keep)
    if args.reboot_command != "none":
        say("rebooting")
        try:
            subprocess.run(shlex.split(args.reboot_command), check=False)
        except OSError as exc:  # no reboot command: the unit's FailureAction=reboot does it
            say(f"cannot reboot ({type(exc).__name__}: {exc})")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
