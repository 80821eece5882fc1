#!/usr/bin/env python3
"""A fake ``firecracker`` (v1.16.1 API) for tests: same flags, same socket API, same rules.

It serves the HTTP API on ``--api-sock`` and enforces what the real VMM enforces: resource ids
``[A-Za-z0-9_]+``, path id equal to body id, unknown fields refused (serde's
``deny_unknown_fields``), required fields and types, pre-boot-only / post-boot-only calls with
Firecracker's messages, ``InstanceStart`` once, ``mmds/config`` only for existing interfaces,
the MMDS size limit (413), drive and kernel files opened at PUT time. Errors are ``400
{"fault_message": ...}``.

On ``InstanceStart`` the "guest" boots: it prints kernel-ish lines on stdout (the serial
console), serves MMDS V2 (tokens with TTL, ``Accept: application/json``, JSON pointers,
``X-Forwarded-For`` refused) and runs the REAL guest agent (``images/guest/blacksmith-agent.py``)
with a runner directory whose ``run.sh`` runs the simulated runner
(``blacksmith_mini/simulator/runner.py``, or ``$FAKE_FC_RUNNER_DIR``). As root it is as unkind
as the real guest (see :class:`Guest`): the agent runs as root in the guest's own network
namespace, where MMDS answers at 169.254.169.254:80, and starts the runner as the unprivileged
user ``$FAKE_FC_RUNNER_USER`` (default ``bmrunner``, created with a ``docker`` group if missing),
with its supplementary groups; the guest's identity files go to ``<state dir>/guest-root``.
Without root (or with ``FAKE_FC_LOOPBACK_MMDS=1``) MMDS is on a loopback port and the runner
runs as the test's own user. When the
agent exits (the guest "reboots") the fake exits 0 if the kernel command line has ``reboot=k``,
as Firecracker does. ``SendCtrlAltDel`` SIGTERMs the guest, which shuts down and reboots.

Test knobs (environment): ``FAKE_FC_CALLS`` (append every API call as a JSON line),
``FAKE_FC_FAIL="PUT /drives/rootfs"`` (answer that call with an injected 400),
``FAKE_FC_IGNORE_CTRL_ALT_DEL=1`` (a guest that never reboots), ``FAKE_FC_CHECK_TAP=1`` (the tap
must exist in /sys/class/net), ``FAKE_FC_AGENT`` (another agent script), ``FAKE_FC_NO_GUEST=1``
(the guest never runs its agent), ``FAKE_FC_CRASH="PUT /machine-config"`` (the VMM dies by
SIGKILL when that call arrives) or ``FAKE_FC_CRASH=after-boot`` (it answers ``InstanceStart``,
prints the kernel's first lines and dies), ``FAKE_FC_BOOT_DELAY=<seconds>`` (the guest takes
that long before its agent starts). ``FAKE_FC_FAULT_ONCE=<path>`` makes the fault knobs (FAIL,
CRASH, NO_GUEST, IGNORE_CTRL_ALT_DEL, RUNNER_DIR, BOOT_DELAY) hold only for the first fake
process, the one that creates ``<path>``; later VMs behave normally.
Stdlib only.

This file is the entry point (the command line, ``main``); the rest lives beside it:
``fakefc_rules`` (API schemas, ids, messages), ``fakefc_vmm`` (the VMM state, its API calls
and the API socket server), ``fakefc_mmds`` (the MMDS store and its V2 endpoint),
``fakefc_guest`` (the booted guest: agent process, reboot, exit), ``fakefc_netns`` (the
guest's network namespace), ``fakefc_runner`` (runner user, directory, mount namespace) and
``fakefc_knobs`` (the ``FAKE_FC_*`` knobs, the console). Run as a script (by path, or as
``firecracker`` through its shebang), it puts its own directory on ``sys.path`` first.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

# Run by path, even with -P / PYTHONSAFEPATH: the sibling modules are importable.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fakefc_knobs import console  # noqa: E402
from fakefc_rules import INSTANCE_ID_RE, VERSION  # noqa: E402
from fakefc_vmm import UnixServer, Vmm, make_api_handler  # noqa: E402

USAGE_ERROR = 153  # Firecracker's exit code for a bad command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Firecracker's flags; a parsing error exits 153 like Firecracker."""
    parser = argparse.ArgumentParser(prog="firecracker", add_help=False)
    parser.add_argument("--api-sock", default="/run/firecracker.socket")
    parser.add_argument("--id", default="anonymous-instance")
    parser.add_argument("--config-file")
    parser.add_argument("--no-api", action="store_true")
    parser.add_argument("--metadata")
    parser.add_argument("--log-path")
    parser.add_argument("--level")
    parser.add_argument("--boot-timer", action="store_true")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--enable-pci", action="store_true")
    parser.add_argument("--http-api-max-payload-size", type=int, default=51200)
    parser.add_argument("--mmds-size-limit", type=int, default=51200)

    class Exit153(Exception):
        pass

    def error(message: str) -> NoReturn:
        sys.stderr.write(f"Arguments parsing error: {message}\n")
        raise Exit153

    parser.error = error  # type: ignore[method-assign]  # exit 153 like Firecracker
    try:
        return parser.parse_args(argv)
    except Exit153:
        sys.exit(USAGE_ERROR)


def main() -> int:
    args = parse_args(sys.argv[1:])
    if args.version:
        console(f"Firecracker v{VERSION}")
        return 0
    if not INSTANCE_ID_RE.fullmatch(args.id):
        sys.stderr.write(f"Invalid instance ID: {args.id}\n")
        return USAGE_ERROR
    if args.no_api or args.config_file:
        sys.stderr.write("fake firecracker: --config-file/--no-api are not emulated\n")
        return 1
    if os.path.exists(args.api_sock):
        sys.stderr.write(
            f"Failed to open the API socket at: {args.api_sock}. "
            "Check that it is not already used.\n"
        )
        return 1
    vmm = Vmm(args)
    server = UnixServer(args.api_sock, make_api_handler(vmm))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1))  # no handler in Firecracker: dies
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
