"""blacksmith_identity: what makes one VM itself (stdlib only), for ``blacksmith-agent``.

Installed beside the agent (``/usr/local/bin``, so the agent imports it from its own
directory). ``set_identity`` gives a VM everything that must differ between two VMs booted
from one image, or restored from one snapshot: DNS servers, hostname, SSH host keys,
machine-id, and for a restored clone a reseeded kernel random pool (``entropy`` in the boot
data: the clone's pool would otherwise start where the template's was) and the wall clock
(``wall_clock``: a snapshot resumes at the time it was taken; Firecracker's
``clock_realtime`` fixes that on x86 hosts with Linux 5.16 or later, this on the others). A
clone keeps the template's address: its own network namespace on the host routes it.
Each step is said on the console; one that fails is reported and the others still run.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

PREFIX = "blacksmith-agent: "
HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
NAMESERVER = re.compile(r"^\s*nameserver\s+(\S+)", re.MULTILINE)
CLOCK_SLACK_SECONDS = 1.0


def say(message: str) -> None:
    sys.stdout.write(PREFIX + message + "\n")
    sys.stdout.flush()


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


def under(root: str, path: str) -> str:
    """``path`` (absolute, in the guest) below the ``--root`` prefix."""
    return os.path.join(root, path.lstrip("/"))


def replace_file(path: str, content: str, *, mode: int = 0o644) -> None:
    """Write ``path`` atomically, replacing a symlink (e.g. resolv.conf -> systemd-resolved)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".blacksmith-new"
    with open(tmp, "w") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def configure_dns(servers: list[str], *, root: str) -> list[str]:
    """``/etc/resolv.conf`` from the boot data, else from the kernel's ``/proc/net/pnp``."""
    if not servers:
        try:
            with open("/proc/net/pnp") as f:
                servers = NAMESERVER.findall(f.read())
        except OSError:
            servers = []
    servers = [s for s in servers if s and s != "0.0.0.0"]
    if servers:
        lines = "".join(f"nameserver {s}\n" for s in servers)
        replace_file(under(root, "/etc/resolv.conf"), "# written by blacksmith-agent\n" + lines)
    return servers


def set_hostname(name: str, *, root: str) -> str:
    """``/etc/hostname``, a ``127.0.1.1`` line in ``/etc/hosts``, and (only when ``root`` is
    ``/``) the kernel's hostname. An invalid name is refused."""
    name = name.strip().lower()
    if not HOSTNAME.fullmatch(name):
        raise ValueError(f"invalid hostname {name!r}")
    replace_file(under(root, "/etc/hostname"), name + "\n")
    hosts_path = under(root, "/etc/hosts")
    try:
        with open(hosts_path) as f:
            lines = [line for line in f.read().splitlines() if not line.startswith("127.0.1.1")]
    except FileNotFoundError:
        lines = ["127.0.0.1\tlocalhost", "::1\t\tlocalhost ip6-localhost ip6-loopback"]
    replace_file(hosts_path, "\n".join([*lines, f"127.0.1.1\t{name}"]) + "\n")
    if os.path.realpath(root) == "/":
        socket.sethostname(name)
    return name


def regenerate_host_keys(*, root: str) -> int:
    """Delete the SSH host keys and make new ones (``ssh-keygen -A``); the number made.

    Skipped (0) when ``/etc/ssh`` is absent (no sshd in this image) or ssh-keygen is missing.
    """
    ssh_dir = under(root, "/etc/ssh")
    keygen = shutil.which("ssh-keygen")
    if not os.path.isdir(ssh_dir) or keygen is None:
        return 0
    for old in glob.glob(os.path.join(ssh_dir, "ssh_host_*")):
        os.unlink(old)
    live = os.path.realpath(root) == "/"
    argv = [keygen, "-A"] if live else [keygen, "-A", "-f", root]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if live and os.path.isdir("/run/systemd/system"):
        restart_sshd()
    return len(glob.glob(os.path.join(ssh_dir, "ssh_host_*_key")))


def restart_sshd() -> None:
    """An enabled ssh.service started (or failed: no keys) before us; start it with the new
    keys. Socket-activated sshd (Ubuntu 24.04's ssh.socket) needs nothing."""
    quiet = {"check": False, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(["systemctl", "is-enabled", "--quiet", "ssh.service"], **quiet).returncode:
        return
    subprocess.run(["systemctl", "reset-failed", "ssh.service"], **quiet)
    subprocess.run(["systemctl", "restart", "--no-block", "ssh.service"], **quiet)


def regenerate_machine_id(*, root: str) -> str:
    """A fresh random ``/etc/machine-id`` (32 hex digits), written in place: with systemd it may
    be a bind mount of ``/run/machine-id``."""
    machine_id = uuid.uuid4().hex
    path = under(root, "/etc/machine-id")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(machine_id + "\n")
    os.chmod(path, 0o444)
    return machine_id


def set_identity(data: dict[str, Any], *, root: str) -> None:
    """Everything that must differ between two VMs booted from one image; said on the console.

    A step that fails is reported and the others still run: a VM without, say, fresh host keys
    can still run its job, and a crash here would only reboot it.
    """
    servers = [str(s) for s in data.get("dns_servers") or []]
    hostname = str(data.get("hostname") or "")
    steps: list[tuple[str, Callable[[], object]]] = []
    if data.get("wall_clock"):  # first: certificates, keys and logs want the right time
        steps.append(("wall clock", lambda: set_clock(float(data["wall_clock"]), root=root)))
    if data.get("entropy"):  # before the keys are made from the pool
        steps.append(("random seed", lambda: reseed(str(data["entropy"]), root=root)))
    steps += [
        ("dns servers", lambda: ",".join(configure_dns(servers, root=root)) or "(none)"),
        ("hostname", lambda: set_hostname(hostname, root=root) if hostname else "(unchanged)"),
        ("ssh host keys", lambda: f"{regenerate_host_keys(root=root)} regenerated"),
        ("machine-id", lambda: regenerate_machine_id(root=root) and "new"),
    ]
    for what, step in steps:
        try:
            say(f"{what}: {step()}")
        except (OSError, ValueError, subprocess.CalledProcessError) as exc:
            say(f"{what}: FAILED ({type(exc).__name__}: {exc})")


def reseed(entropy: str, *, root: str) -> str:
    """Mix the boot data's fresh bytes into the kernel's pool (a clone's pool is the
    template's until then); only on a real guest (``root`` is ``/``)."""
    seed = bytes.fromhex(entropy)
    if root != "/":
        return f"{len(seed)} bytes (not written: not the real root)"
    with open("/dev/urandom", "wb") as pool:
        pool.write(seed)
    return f"{len(seed)} bytes mixed in"


def set_clock(wall_clock: float, *, root: str) -> str:
    """Set the wall clock forward when it is behind by more than a second (a restored
    snapshot's clock is the template's; never backwards: the boot data's time was taken
    before it got here); only on a real guest."""
    drift = wall_clock - time.time()
    if drift <= CLOCK_SLACK_SECONDS:  # not behind: the boot data's time is itself a bit old
        return f"in step ({drift:+.1f}s)"
    if root != "/":
        return f"off by {drift:+.1f}s (not set: not the real root)"
    subprocess.run(["date", "-s", f"@{wall_clock:.3f}"], check=True, capture_output=True)
    return f"set ({drift:+.1f}s)"

