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
"""

# ruff: noqa: E501  (Firecracker's messages are kept verbatim)

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

VERSION = "1.16.1"
ID_RE = re.compile(r"[A-Za-z0-9_]+")
INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
AFTER = "The requested operation is not supported after starting the microVM."
BEFORE = "The requested operation is not supported before starting the microVM."
REPO = Path(__file__).resolve().parents[2]

# field -> (type, required); "any" accepts whatever JSON
SCHEMAS: dict[str, dict[str, tuple[Any, bool]]] = {
    "logger": {
        "log_path": (str, False),
        "level": (str, False),
        "show_level": (bool, False),
        "show_log_origin": (bool, False),
        "module": (str, False),
    },
    "metrics": {"metrics_path": (str, True)},
    "machine-config": {
        "vcpu_count": (int, True),
        "mem_size_mib": (int, True),
        "smt": (bool, False),
        "track_dirty_pages": (bool, False),
        "huge_pages": (str, False),
        "cpu_template": (str, False),
    },
    "boot-source": {
        "kernel_image_path": (str, True),
        "boot_args": (str, False),
        "initrd_path": (str, False),
    },
    "drives": {
        "drive_id": (str, True),
        "path_on_host": (str, False),
        "is_root_device": (bool, True),
        "is_read_only": (bool, False),
        "partuuid": (str, False),
        "cache_type": (str, False),
        "io_engine": (str, False),
        "rate_limiter": (dict, False),
        "socket": (str, False),
    },
    "network-interfaces": {
        "iface_id": (str, True),
        "host_dev_name": (str, True),
        "guest_mac": (str, False),
        "rx_rate_limiter": (dict, False),
        "tx_rate_limiter": (dict, False),
    },
    "mmds/config": {
        "network_interfaces": (list, True),
        "version": (str, False),
        "ipv4_address": (str, False),
        "imds_compat": (bool, False),
    },
    "actions": {"action_type": (str, True)},
    "vsock": {"guest_cid": (int, True), "uds_path": (str, True), "vsock_id": (str, False)},
    "entropy": {"rate_limiter": (dict, False)},
}
PRE_BOOT_ONLY = {
    "logger",
    "metrics",
    "machine-config",
    "boot-source",
    "drives",
    "network-interfaces",
    "mmds/config",
    "vsock",
    "entropy",
}
LOG_LEVELS = {"Error", "Warning", "Info", "Debug", "Trace", "Off"}


class ApiError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


FAULT_KNOBS = {
    "FAKE_FC_FAIL",
    "FAKE_FC_CRASH",
    "FAKE_FC_NO_GUEST",
    "FAKE_FC_IGNORE_CTRL_ALT_DEL",
    "FAKE_FC_RUNNER_DIR",
    "FAKE_FC_BOOT_DELAY",
}
_faulty: bool | None = None


def knob(name: str) -> str:
    """The test knob ``name`` ("" when unset, or when FAKE_FC_FAULT_ONCE chose another VM)."""
    global _faulty
    value = os.environ.get(name, "")
    once = os.environ.get("FAKE_FC_FAULT_ONCE")
    if not value or name not in FAULT_KNOBS or not once:
        return value
    if _faulty is None:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            _faulty = True
        except FileExistsError:
            _faulty = False
    return value if _faulty else ""


def console(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def validate(kind: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(
            f"An error occurred when deserializing the json body of a request: "
            f"invalid type: expected struct for {kind}."
        )
    schema = SCHEMAS[kind]
    for key in body:
        if key not in schema:
            expected = ", ".join(f"`{k}`" for k in schema)
            raise ApiError(
                "An error occurred when deserializing the json body of a request: "
                f"unknown field `{key}`, expected one of {expected}."
            )
    for key, (typ, required) in schema.items():
        if required and key not in body:
            raise ApiError(
                "An error occurred when deserializing the json body of a request: "
                f"missing field `{key}`."
            )
        if key in body and not (
            isinstance(body[key], typ) and not (typ is int and isinstance(body[key], bool))
        ):
            raise ApiError(
                "An error occurred when deserializing the json body of a request: "
                f"invalid type for `{key}`."
            )
    return body


def check_id(value: str) -> None:
    if not ID_RE.fullmatch(value):
        raise ApiError("API Resource IDs can only contain alphanumeric characters and underscores.")


class Vmm:
    """The fake VMM's state; every method implements one API call."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.instance_id = args.id
        self.started = False
        self.lock = threading.RLock()
        self.logger: dict[str, Any] | None = None
        self.metrics: dict[str, Any] | None = None
        self.machine = {
            "vcpu_count": 1,
            "mem_size_mib": 128,
            "smt": False,
            "track_dirty_pages": False,
        }
        self.boot_source: dict[str, Any] | None = None
        self.drives: dict[str, dict[str, Any]] = {}
        self.ifaces: dict[str, dict[str, Any]] = {}
        self.mmds_config: dict[str, Any] | None = None
        self.mmds: Any = {}
        self.mmds_limit = args.mmds_size_limit
        self.guest: Guest | None = None

    def log(self, message: str) -> None:
        if self.logger and self.logger.get("log_path"):
            with open(self.logger["log_path"], "a") as f:
                f.write(
                    f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{self.instance_id}:fc_api] {message}\n"
                )

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        record = os.environ.get("FAKE_FC_CALLS")
        if record:
            with open(record, "a") as f:
                f.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")
        if knob("FAKE_FC_CRASH") == f"{method} {path}":
            os.kill(os.getpid(), signal.SIGKILL)  # a VMM crash: no answer, no clean-up
        if knob("FAKE_FC_FAIL") == f"{method} {path}":
            raise ApiError(
                f"Injected fault for {method} {path}: No such file or directory (os error 2)"
            )
        with self.lock:
            return self._dispatch(method, path, body)

    def _dispatch(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/") if path != "/" else [""]
        kind = parts[0]
        if method == "GET":
            return self._get(path)
        if kind == "mmds" and len(parts) == 1:
            return self._mmds(method, body)
        key = "mmds/config" if path == "/mmds/config" else kind
        if method != "PUT" or key not in SCHEMAS:
            if method == "PATCH" and kind in (
                "drives",
                "network-interfaces",
                "vm",
                "machine-config",
            ):
                if not self.started and kind != "machine-config":
                    raise ApiError(BEFORE)
                if self.started and kind == "machine-config":
                    raise ApiError(AFTER)
                return 204, None
            raise ApiError(f"Invalid request method and/or path: {method} {path}.")
        if key in PRE_BOOT_ONLY and self.started:
            raise ApiError(AFTER)
        body = validate(key, body)
        if kind in ("drives", "network-interfaces"):
            if len(parts) != 2:
                raise ApiError(f"Invalid request method and/or path: {method} {path}.")
            check_id(parts[1])
            body_id = body["drive_id" if kind == "drives" else "iface_id"]
            check_id(body_id)
            if parts[1] != body_id:
                raise ApiError("The id from the path does not match the id from the body!")
        getattr(self, "put_" + key.replace("-", "_").replace("/", "_"))(body)
        self.log(f'The API server received a {method} request on "{path}".')
        return 204, None

    def _get(self, path: str) -> tuple[int, Any]:
        if path == "/":
            state = "Running" if self.started else "Not started"
            return 200, {
                "id": self.instance_id,
                "state": state,
                "vmm_version": VERSION,
                "app_name": "Firecracker",
            }
        if path == "/version":
            return 200, {"firecracker_version": VERSION}
        if path == "/machine-config":
            return 200, self.machine
        if path == "/mmds":
            return 200, self.mmds
        if path == "/vm/config":
            return 200, {
                "boot-source": self.boot_source,
                "drives": list(self.drives.values()),
                "machine-config": self.machine,
                "network-interfaces": list(self.ifaces.values()),
                "mmds-config": self.mmds_config,
                "logger": self.logger,
                "metrics": self.metrics,
            }
        raise ApiError(f"Invalid request method and/or path: GET {path}.")

    def put_logger(self, body: dict[str, Any]) -> None:
        if "level" in body and body["level"] not in LOG_LEVELS:
            raise ApiError(f"Invalid log level: {body['level']}")
        if "log_path" in body:
            open(body["log_path"], "a").close()
        self.logger = body
        self.log(f"Running Firecracker v{VERSION}")

    def put_metrics(self, body: dict[str, Any]) -> None:
        with open(body["metrics_path"], "a") as f:
            f.write("{}\n")
        self.metrics = body

    def put_machine_config(self, body: dict[str, Any]) -> None:
        vcpus = body["vcpu_count"]
        if not 1 <= vcpus <= 32:
            raise ApiError(
                "The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled."
            )
        if body.get("smt") and vcpus > 1 and vcpus % 2:
            raise ApiError(
                "The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled."
            )
        if body["mem_size_mib"] < 1:
            raise ApiError("The memory size (MiB) is invalid.")
        self.machine = {**self.machine, **body}

    def put_boot_source(self, body: dict[str, Any]) -> None:
        kernel = body["kernel_image_path"]
        if not os.path.isfile(kernel):
            raise ApiError(
                "The kernel file cannot be opened: No such file or directory (os error 2)"
            )
        self.boot_source = body

    def put_drives(self, body: dict[str, Any]) -> None:
        path = body.get("path_on_host", "")
        if not os.path.isfile(path):
            raise ApiError(
                f'Unable to create the block device: BackingFile(Os {{ code: 2, kind: NotFound, message: "No such file or directory" }}, "{path}")'
            )
        if body["is_root_device"] and any(
            d["is_root_device"] for i, d in self.drives.items() if i != body["drive_id"]
        ):
            raise ApiError("A root block device already exists!")
        self.drives[body["drive_id"]] = body

    def put_network_interfaces(self, body: dict[str, Any]) -> None:
        tap = body["host_dev_name"]
        if os.environ.get("FAKE_FC_CHECK_TAP") and not os.path.exists(f"/sys/class/net/{tap}"):
            raise ApiError(
                f"Open tap device failed: Error while creating ifreq structure: No such device (os error 19). Invalid TUN/TAP Backend provided by {tap}."
            )
        mac = body.get("guest_mac")
        if mac is not None and not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", mac):
            raise ApiError(f"Invalid MAC address: {mac}")
        self.ifaces[body["iface_id"]] = body

    def put_mmds_config(self, body: dict[str, Any]) -> None:
        ids = body["network_interfaces"]
        if not ids or any(i not in self.ifaces for i in ids):
            raise ApiError(
                "The list of network interface IDs provided contains at least one ID "
                "that does not correspond to any existing network interface."
            )
        if body.get("version", "V1") not in ("V1", "V2"):
            raise ApiError("Invalid MMDS version")
        self.mmds_config = body

    def put_vsock(self, body: dict[str, Any]) -> None:
        pass

    def put_entropy(self, body: dict[str, Any]) -> None:
        pass

    def _mmds(self, method: str, body: Any) -> tuple[int, Any]:
        if method == "PUT":
            new = body
        elif method == "PATCH":
            new = merge_patch(self.mmds, body)
        else:
            raise ApiError(f"Invalid request method and/or path: {method} /mmds.")
        if len(json.dumps(new)) > self.mmds_limit:
            raise ApiError("The MMDS data store limit was exceeded.", status=413)
        self.mmds = new
        return 204, None

    def put_actions(self, body: dict[str, Any]) -> None:
        action = body["action_type"]
        if action == "InstanceStart":
            if self.started:
                raise ApiError(AFTER)
            if self.boot_source is None:
                raise ApiError("Cannot start microvm without kernel configuration.")
            self.started = True
            self.guest = Guest(self)
            self.guest.boot()
        elif action == "SendCtrlAltDel":
            if not self.started:
                raise ApiError(BEFORE)
            assert self.guest is not None
            self.guest.ctrl_alt_del()
        elif action == "FlushMetrics":
            if not self.started:
                raise ApiError(BEFORE)
        else:
            raise ApiError(
                f"unknown variant `{action}`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`"
            )


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


CLONE_NEWNET = 0x40000000
MMDS_IP = "169.254.169.254"
LOOPBACK_URL = re.compile(r"^https?://(?:127\.0\.0\.1|localhost):(\d+)(?:/|$)")


def _libc_call(name: str, *args: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")


def unkind_guest() -> bool:
    """Root, ``ip`` and no opt-out: the guest gets its own netns and an unprivileged runner."""
    hidden = [str(REPO), sys.executable, os.path.realpath(sys.executable)]
    return (
        os.geteuid() == 0
        and shutil.which("ip") is not None
        and os.path.isdir("/mnt")
        and not any(path.startswith("/mnt/") for path in hidden)
        and not os.environ.get("FAKE_FC_LOOPBACK_MMDS")
    )


def ensure_runner_user(name: str) -> pwd.struct_passwd:
    """The guest's runner user, as in the image: unprivileged, supplementary group ``docker``.
    Created on this (test) machine if missing; concurrent fakes may race, so re-check."""
    if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", "-f", "docker"], capture_output=True, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", "-G", "docker", name],
            capture_output=True,
            check=False,
        )
    return pwd.getpwnam(name)


def world_usable(path: str) -> bool:
    """Can any user execute ``path`` (every parent searchable, the file r-x for others)?"""
    real = os.path.realpath(path)
    parts = Path(real).parents
    try:
        ok = all(os.stat(parent).st_mode & 0o001 for parent in parts)
        return ok and os.stat(real).st_mode & 0o005 == 0o005
    except OSError:
        return False


def guest_python() -> str:
    """An interpreter the runner user can run (the venv's may live under /root)."""
    for candidate in (sys.executable, "/usr/bin/python3", "/usr/local/bin/python3"):
        if world_usable(candidate):
            return candidate
    return sys.executable


def loopback_ports(store: Any) -> set[int]:
    """Ports of loopback URLs in the JIT config's ``.runner`` (the broker the runner calls)."""
    import base64

    try:
        config = store["latest"]["meta-data"]["blacksmith"]["runner_jit_config"]
        files = json.loads(base64.b64decode(config))
        runner = json.loads(base64.b64decode(files[".runner"]))
    except (KeyError, TypeError, ValueError):
        return set()
    found = (LOOPBACK_URL.match(v) for v in runner.values() if isinstance(v, str))
    return {int(m.group(1)) for m in found if m}


class Forwarder:
    """127.0.0.1:<port> inside the guest's namespace, relayed to the same port outside: the
    guest reaching the host through its tap, in the fake."""

    def __init__(self, listener: socket.socket, *, port: int, outer_ns: int) -> None:
        self.listener, self.port, self.outer_ns = listener, port, outer_ns
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        _libc_call("setns", self.outer_ns, CLONE_NEWNET)  # this thread dials from outside
        while True:
            inner, _ = self.listener.accept()
            try:
                outer = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class Guest:
    """The booted "guest": an MMDS endpoint and the real guest agent.

    Unkind mode (:func:`unkind_guest`), like a real guest: the thread that boots it enters a
    new network namespace (``unshare(CLONE_NEWNET)`` is per thread), brings up ``lo`` and a
    dummy ``mmds0`` holding 169.254.169.254, binds MMDS to 169.254.169.254:80 there, relays the
    broker's loopback port (:class:`Forwarder`), and forks the agent, which inherits the
    namespace. Nothing is named, so the namespace dies with the fake, even after SIGKILL.
    """

    def __init__(self, vmm: Vmm) -> None:
        self.vmm = vmm
        self.tokens: dict[str, float] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.mmds_server: http.server.ThreadingHTTPServer | None = None
        # The "guest's disk": beside the API socket, i.e. in the VM's state directory, which
        # the driver removes on release (so nothing is left in /tmp, even after a SIGKILL).
        self.scratch = str(Path(vmm.args.api_sock).resolve().parent)
        self.unkind = unkind_guest()
        self.runner_dir = ""

    def boot(self) -> None:
        boot_args = (self.vmm.boot_source or {}).get("boot_args", "")
        console("[    0.000000] Linux version 6.1.141 (fake-firecracker) #1 SMP")
        console(f"[    0.000000] Command line: {boot_args}")
        if knob("FAKE_FC_CRASH") == "after-boot":
            threading.Thread(target=crash_soon, daemon=True).start()
            return
        if knob("FAKE_FC_NO_GUEST"):
            return
        agent = os.environ.get("FAKE_FC_AGENT") or str(REPO / "images/guest/blacksmith-agent.py")
        name = os.environ.get("FAKE_FC_RUNNER_USER") or "bmrunner"
        user = ensure_runner_user(name) if self.unkind else None
        runner_dir = knob("FAKE_FC_RUNNER_DIR") or simulator_runner_dir(self.scratch, user=user)
        self.runner_dir = runner_dir
        env = dict(os.environ)
        env.update(
            BLACKSMITH_RUNNER_DIR=GUEST_RUNNER_DIR if user is not None else runner_dir,
            BLACKSMITH_RUNNER_USER=user.pw_name if user is not None else "",
            BLACKSMITH_SSH_DIR=os.environ.get("FAKE_FC_SSH_DIR")
            or tempfile.mkdtemp(prefix="fakefc-ssh-", dir=self.scratch),
            BLACKSMITH_ROOT=self._guest_root(),
            BLACKSMITH_REBOOT_COMMAND="none",
        )
        if self.unkind:
            env["BLACKSMITH_MMDS_ADDRESS"] = MMDS_IP
        else:
            self.mmds_server = http.server.ThreadingHTTPServer(
                ("127.0.0.1", 0), make_mmds_handler(self)
            )
            threading.Thread(target=self.mmds_server.serve_forever, daemon=True).start()
            env["BLACKSMITH_MMDS_ADDRESS"] = f"127.0.0.1:{self.mmds_server.server_address[1]}"
        console("[    0.125000] Run /sbin/init as init process")
        spawned = threading.Event()
        threading.Thread(
            target=self._run, args=([sys.executable, agent], env, spawned), daemon=True
        ).start()
        spawned.wait(5)

    def _guest_root(self) -> str:
        root = Path(self.scratch) / "guest-root"
        (root / "etc").mkdir(parents=True, exist_ok=True)
        return str(root)

    def _enter_guest_network(self) -> None:
        """This thread (and what it forks) moves to the guest's own network namespace."""
        outer_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        _libc_call("unshare", CLONE_NEWNET)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        # The guest's eth0, its peer holding MMDS's address (some kernels lack dummy links).
        veth = ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "mmds0"]
        device = "mmds0" if subprocess.run(veth, capture_output=True).returncode == 0 else "lo"
        for argv in (
            ["ip", "addr", "add", f"{MMDS_IP}/32", "dev", device],
            ["ip", "link", "set", device, "up"],
            *([["ip", "link", "set", "eth0", "up"]] if device != "lo" else []),
        ):
            subprocess.run(argv, check=True, capture_output=True)
        self.mmds_server = http.server.ThreadingHTTPServer((MMDS_IP, 80), make_mmds_handler(self))
        threading.Thread(target=self.mmds_server.serve_forever, daemon=True).start()
        for port in sorted(loopback_ports(self.vmm.mmds)):
            listener = socket.create_server(("127.0.0.1", port))
            Forwarder(listener, port=port, outer_ns=outer_ns)

    def _run(self, argv: list[str], env: dict[str, str], spawned: threading.Event) -> None:
        if self.unkind:
            try:
                self._enter_guest_network()
            except (OSError, subprocess.CalledProcessError) as exc:
                console(f"[    0.200000] fake: no guest network namespace ({exc})")
                spawned.set()
                return
        delay = float(knob("FAKE_FC_BOOT_DELAY") or 0)
        if delay:
            spawned.set()
            time.sleep(delay)  # a slow boot: systemd has not reached the agent's unit yet
        # Same process group as the VMM: killing the VM's group kills the "guest" too. The
        # death signal follows this thread, which lives as long as the guest (a "vCPU thread").
        preexec = die_with_parent
        if self.unkind and env.get("BLACKSMITH_RUNNER_DIR") == GUEST_RUNNER_DIR:
            runner_dir = self.runner_dir

            def preexec() -> None:
                die_with_parent()
                mount_runner_dir(runner_dir)

        self.process = subprocess.Popen(argv, env=env, preexec_fn=preexec)
        spawned.set()
        self.process.wait()
        boot_args = (self.vmm.boot_source or {}).get("boot_args", "")
        console("[   10.000000] reboot: Restarting system")
        if "reboot=k" in boot_args.split():
            self.vmm.log("Vmm is stopping.")
            sys.stdout.flush()
            os._exit(0)
        # without reboot=k an x86 guest reboot/poweroff leaves Firecracker running

    def ctrl_alt_del(self) -> None:
        if knob("FAKE_FC_IGNORE_CTRL_ALT_DEL"):
            console("[   10.000000] (guest ignores ctrl-alt-del)")
            return
        if self.process is None:  # FAKE_FC_NO_GUEST: the "guest" reboots at once
            threading.Thread(target=reboot_soon, daemon=True).start()
            return
        console("[   10.000000] systemd[1]: Received ctrl-alt-del, rebooting")
        try:
            self.process.send_signal(signal.SIGTERM)  # systemd stopping the agent's unit
        except ProcessLookupError:
            return
        threading.Thread(target=self._shutdown_timeout, daemon=True).start()

    def _shutdown_timeout(self) -> None:
        time.sleep(3)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


def crash_soon() -> None:
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


def reboot_soon() -> None:
    time.sleep(0.05)
    os._exit(0)


GUEST_RUNNER_DIR = "/mnt/runner"


def mount_runner_dir(runner_dir: str) -> None:
    """In the (single-threaded) forked guest: a private mount namespace where the runner
    directory appears at /mnt/runner on a fresh tmpfs, so the unprivileged runner reaches it
    although the VM's state directory is private (0700), as /opt/runner in a real guest.
    The namespace ends with the guest; nothing is left on the host."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ms_bind, ms_rec, ms_private = 4096, 16384, 1 << 18

    def mount(
        source: str, target: str, *, fstype: str | None = None, flags: int = 0, data: str = ""
    ) -> None:
        kind = fstype.encode() if fstype else None
        if libc.mount(source.encode(), target.encode(), kind, flags, data.encode() or None):
            raise OSError(ctypes.get_errno(), f"mount {target}")

    _libc_call("unshare", 0x00020000)  # CLONE_NEWNS
    mount("none", "/", flags=ms_rec | ms_private)
    mount("tmpfs", "/mnt", fstype="tmpfs", data="mode=0755,size=1m")
    os.mkdir(GUEST_RUNNER_DIR)
    mount(runner_dir, GUEST_RUNNER_DIR, flags=ms_bind)


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG: the "guest" never outlives its VMM."""
    import ctypes

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def simulator_runner_dir(parent: str, *, user: pwd.struct_passwd | None) -> str:
    """The guest's /opt/runner: ``run.sh`` starting a copy of the simulated runner (stdlib
    only), owned by the runner user, so it needs nothing outside this directory."""
    runner_dir = tempfile.mkdtemp(prefix="fakefc-runner-", dir=parent)
    script = REPO / "src/blacksmith_mini/simulator/runner.py"
    shutil.copy(script, Path(runner_dir) / "simulated_runner.py")
    run_sh = Path(runner_dir) / "run.sh"
    run_sh.write_text(f'#!/bin/sh\nexec "{guest_python()}" - "$@" < ./simulated_runner.py\n')
    run_sh.chmod(0o755)
    if user is not None:
        for path in (runner_dir, *(str(p) for p in Path(runner_dir).iterdir())):
            os.chown(path, user.pw_uid, user.pw_gid)
    return runner_dir


def make_mmds_handler(guest: Guest) -> type[http.server.BaseHTTPRequestHandler]:
    class MmdsHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/latest/api/token":
                return self._send(405, "Not allowed HTTP method.")
            if self.headers.get("X-Forwarded-For"):
                return self._send(
                    400, "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For"
                )
            try:
                ttl = int(self.headers.get("X-metadata-token-ttl-seconds", ""))
            except ValueError:
                return self._send(400, "Token time to live value not found.")
            if not 1 <= ttl <= 21600:
                return self._send(
                    400,
                    f"Invalid time to live value provided for token: {ttl}. Please provide a value between 1 and 21600.",
                )
            token = secrets.token_urlsafe(32)
            guest.tokens[token] = time.monotonic() + ttl
            self._send(200, token)

        def do_GET(self) -> None:
            config = guest.vmm.mmds_config or {}
            if config.get("version", "V1") == "V2":
                token = self.headers.get("X-metadata-token", "")
                if guest.tokens.get(token, 0) < time.monotonic():
                    return self._send(401, "MMDS token not valid.")
            with guest.vmm.lock:
                value: Any = guest.vmm.mmds
                for part in [p for p in self.path.split("?")[0].split("/") if p]:
                    if isinstance(value, dict) and part in value:
                        value = value[part]
                    elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                        value = value[int(part)]
                    else:
                        return self._send(404, f"Resource not found: {self.path}.")
                value = json.loads(json.dumps(value))
            if "application/json" in self.headers.get("Accept", "") and not config.get(
                "imds_compat"
            ):
                return self._send(200, json.dumps(value), "application/json")
            if isinstance(value, dict):
                text = "\n".join(k + ("/" if isinstance(v, dict) else "") for k, v in value.items())
            elif isinstance(value, str):
                text = value
            else:
                return self._send(501, "Cannot retrieve value. The value has an unsupported type.")
            self._send(200, text)

    return MmdsHandler


def make_api_handler(vmm: Vmm) -> type[http.server.BaseHTTPRequestHandler]:
    class ApiHandler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def address_string(self) -> str:
            return "api-socket"

        def _reply(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if len(raw) > vmm.args.http_api_max_payload_size:
                limit = vmm.args.http_api_max_payload_size
                message = (
                    f"Request payload with size {len(raw)} is larger than the limit of "
                    f"{limit} allowed by server."
                )
                self._reply(400, {"fault_message": message})
                return
            try:
                body = json.loads(raw) if raw else None
            except ValueError as exc:
                self._reply(
                    400,
                    {
                        "fault_message": "An error occurred when deserializing the json body of a request: "
                        + str(exc)
                        + "."
                    },
                )
                return
            try:
                status, answer = vmm.handle(self.command, self.path, body)
            except ApiError as exc:
                status, answer = exc.status, {"fault_message": str(exc)}
            self._reply(status, answer)

        do_GET = do_PUT = do_PATCH = _handle

    return ApiHandler


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def parse_args(argv: list[str]) -> argparse.Namespace:
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
        sys.exit(153)


def main() -> int:
    args = parse_args(sys.argv[1:])
    if args.version:
        console(f"Firecracker v{VERSION}")
        return 0
    if not INSTANCE_ID_RE.fullmatch(args.id):
        sys.stderr.write(f"Invalid instance ID: {args.id}\n")
        return 153
    if args.no_api or args.config_file:
        sys.stderr.write("fake firecracker: --config-file/--no-api are not emulated\n")
        return 1
    if os.path.exists(args.api_sock):
        sys.stderr.write(
            f"Failed to open the API socket at: {args.api_sock}. Check that it is not already used.\n"
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
