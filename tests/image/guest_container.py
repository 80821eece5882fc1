#!/usr/bin/env python3
"""Boot a built image's userland in a container, as a Firecracker guest without the kernel.

Run as root under ``unshare --net --pid --mount --uts --ipc --fork --kill-child`` (so this is
PID 1 of a fresh PID namespace, with its own mount, network and UTS namespaces; when it ends,
the kernel kills everything left inside and every mount and interface goes with it):

1. an overlay of the image's tree (read-only lower) with ``--work`` as its writable upper, so
   each guest starts from the same pristine image and the test reads what it changed;
2. ``/proc`` (this PID namespace), ``/dev``, a tmpfs ``/run`` and ``/tmp`` in it;
3. ``eth0`` (a veth whose peer ``mmds0`` holds 169.254.169.254) and an MMDS V2 server bound to
   169.254.169.254:80 here, as Firecracker answers on the guest's interface;
4. the agent exactly as the image's systemd unit starts it (``ExecStart``), chrooted, plus
   ``--reboot-command none``; its console is relayed to stdout, MMDS wiped at its ack.

Exit status: the agent's. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guest_support import MmdsV2, relay_console

UNIT = "etc/systemd/system/blacksmith-agent.service"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(*argv: str) -> None:
    subprocess.run(argv, check=True)


def mount_guest(tree: Path, work: Path) -> Path:
    upper, scratch, merged = work / "upper", work / "overlay-work", work / "merged"
    for path in (upper, scratch, merged):
        path.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={tree},upperdir={upper},workdir={scratch}"
    run("mount", "-t", "overlay", "overlay", "-o", options, str(merged))
    run("mount", "-t", "proc", "proc", str(merged / "proc"))
    run("mount", "--rbind", "/dev", str(merged / "dev"))
    for path in ("run", "tmp"):
        run(
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "mode=1777" if path == "tmp" else "mode=0755",
            path,
            str(merged / path),
        )
    return merged


def network(guest_ip: str) -> None:
    run("ip", "link", "set", "lo", "up")
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "mmds0")
    run("ip", "addr", "add", f"{guest_ip}/30", "dev", "eth0")
    run("ip", "addr", "add", "169.254.169.254/32", "dev", "mmds0")
    for device in ("eth0", "mmds0"):
        run("ip", "link", "set", device, "up")


def agent_argv(merged: Path) -> list[str]:
    for line in (merged / UNIT).read_text().splitlines():
        if line.startswith("ExecStart="):
            return [*shlex.split(line.removeprefix("ExecStart=")), "--reboot-command", "none"]
    raise SystemExit(f"no ExecStart in {UNIT}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tree", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--boot-data", type=Path, required=True)
    parser.add_argument("--guest-ip", default="172.16.0.2")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()
    if os.getpid() != 1:
        raise SystemExit("run me under unshare --pid --fork (I must be PID 1)")
    merged = mount_guest(args.tree, args.work)
    network(args.guest_ip)
    data = json.loads(args.boot_data.read_text())
    console: list[str] = []
    with MmdsV2(data, host="169.254.169.254", port=80) as mmds:
        process = subprocess.Popen(
            ["chroot", str(merged), *agent_argv(merged)],
            env={"PATH": PATH, "LANG": "C.UTF-8", "TERM": "dumb"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        code = relay_console(
            process, mmds=mmds, sink=console, deadline=time.monotonic() + args.timeout
        )
    (args.work / "console.log").write_text("\n".join(console) + "\n")
    sys.stdout.write("\n".join(console) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
