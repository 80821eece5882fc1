"""The fake Firecracker's VMM: its state, one method per API call, the API socket server.

:class:`Vmm` applies the rules of :mod:`fakefc_rules` the way the real VMM does: pre-boot-only
and post-boot-only calls, ``InstanceStart`` once, ``mmds/config`` only for existing interfaces,
kernel and drive files opened at PUT time, the MMDS store (:mod:`fakefc_mmds`), pausing and
snapshots with their rules (:mod:`fakefc_snapshot`). The test knobs
``FAKE_FC_CALLS`` (record each call), ``FAKE_FC_FAIL`` (an injected 400), ``FAKE_FC_HANG`` (a
call never answered), ``FAKE_FC_CRASH``
(SIGKILL on a call) and ``FAKE_FC_CHECK_TAP`` act here. :func:`make_api_handler` and
:class:`UnixServer` serve it on ``--api-sock`` (HTTP/1.1, JSON bodies). Stdlib only.
"""

# ruff: noqa: E501  (Firecracker's messages are kept verbatim)

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time
from typing import Any

import fakefc_snapshot
from fakefc_guest import Guest
from fakefc_knobs import knob
from fakefc_mmds import updated_store
from fakefc_rules import (
    AFTER,
    BEFORE,
    LOG_LEVELS,
    MAC_RE,
    PRE_BOOT_ONLY,
    SCHEMAS,
    UNKNOWN_ACTION,
    VCPU_INVALID,
    VERSION,
    ApiError,
    check_patch,
    check_resource_path,
    invalid_path,
    validate,
)

PATCHABLE = ("drives", "network-interfaces", "vm", "machine-config")


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
        self.boot_path = False  # a boot-specific resource was configured: no snapshot load
        self.paused = False
        self.loaded_from: str | None = None
        self.clock_realtime = False

    def log(self, message: str) -> None:
        if self.logger and self.logger.get("log_path"):
            with open(self.logger["log_path"], "a") as f:
                f.write(
                    f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{self.instance_id}:fc_api] {message}\n"
                )

    def handle(self, method: str, path: str, *, body: Any) -> tuple[int, Any]:
        record = os.environ.get("FAKE_FC_CALLS")
        if record:
            with open(record, "a") as f:
                f.write(json.dumps({"method": method, "path": path, "body": body}) + "\n")
        if knob("FAKE_FC_CRASH") == f"{method} {path}":
            os.kill(os.getpid(), signal.SIGKILL)  # a VMM crash: no answer, no clean-up
        if knob("FAKE_FC_HANG") == f"{method} {path}":
            time.sleep(3600)  # a call that never answers (a restore that hangs)
        if knob("FAKE_FC_FAIL") == f"{method} {path}":
            raise ApiError(
                f"Injected fault for {method} {path}: No such file or directory (os error 2)"
            )
        with self.lock:
            return self._dispatch(method, path, body=body)

    def _dispatch(self, method: str, path: str, *, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/") if path != "/" else [""]
        kind = parts[0]
        if method == "GET":
            return self._get(path)
        if kind == "mmds" and len(parts) == 1:
            self.mmds = updated_store(self.mmds, method, body=body, limit=self.mmds_limit)
            return 204, None
        key = "mmds/config" if path == "/mmds/config" else kind
        if method == "PATCH" and path == "/vm":
            fakefc_snapshot.patch_vm(self, body)
            return 204, None
        if method == "PUT" and path in ("/snapshot/create", "/snapshot/load"):
            getattr(fakefc_snapshot, path.rsplit("/", 1)[1])(self, body)
            self.log(f'The API server received a {method} request on "{path}".')
            return 204, None
        if method != "PUT" or key not in SCHEMAS:
            if method == "PATCH" and kind in PATCHABLE:
                check_patch(kind, started=self.started)
                return 204, None
            raise invalid_path(method, path)
        if key in PRE_BOOT_ONLY and self.started:
            raise ApiError(AFTER)
        body = validate(key, body)
        if key not in ("logger", "metrics"):
            self.boot_path = True
        if kind in ("drives", "network-interfaces"):
            if len(parts) != 2:
                raise invalid_path(method, path)
            check_resource_path(kind, parts, body=body)
        getattr(self, "put_" + key.replace("-", "_").replace("/", "_"))(body)
        self.log(f'The API server received a {method} request on "{path}".')
        return 204, None

    def _get(self, path: str) -> tuple[int, Any]:
        if path == "/":
            state = ("Paused" if self.paused else "Running") if self.started else "Not started"
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
        raise invalid_path("GET", path)

    def restore_guest(self) -> None:
        """After a snapshot load: the guest as snapshotted, running once resumed."""
        self.guest = Guest(self)
        if not self.paused:
            self.guest.boot()

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
            raise ApiError(VCPU_INVALID)
        if body.get("smt") and vcpus > 1 and vcpus % 2:
            raise ApiError(VCPU_INVALID)
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
        if mac is not None and not MAC_RE.fullmatch(mac):
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
            raise ApiError(UNKNOWN_ACTION.format(action=action))


def make_api_handler(vmm: Vmm) -> type[http.server.BaseHTTPRequestHandler]:
    """The HTTP handler of the API socket: JSON in, ``vmm.handle``, JSON (or nothing) out."""

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
                message = f"An error occurred when deserializing the json body of a request: {exc}."
                self._reply(400, {"fault_message": message})
                return
            try:
                status, answer = vmm.handle(self.command, self.path, body=body)
            except ApiError as exc:
                status, answer = exc.status, {"fault_message": str(exc)}
            self._reply(status, answer)

        do_GET = do_PUT = do_PATCH = _handle

    return ApiHandler


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The API socket: one thread per connection; clients hanging up are not errors."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)
