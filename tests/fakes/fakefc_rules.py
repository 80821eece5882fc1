"""The fake Firecracker's API rules: body schemas, resource ids, verbatim error messages.

What the real VMM's request parsing enforces: serde's ``deny_unknown_fields``, required
fields and their JSON types, resource ids ``[A-Za-z0-9_]+``, which calls are pre-boot only.
A refused call raises :class:`ApiError`, answered ``{"fault_message": ...}``. Stdlib only.
"""

# ruff: noqa: E501  (Firecracker's messages are kept verbatim)

from __future__ import annotations

import re
from typing import Any

VERSION = "1.16.1"
ID_RE = re.compile(r"[A-Za-z0-9_]+")
INSTANCE_ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")
MAC_RE = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")
AFTER = "The requested operation is not supported after starting the microVM."
BEFORE = "The requested operation is not supported before starting the microVM."
VCPU_INVALID = "The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled."
UNKNOWN_ACTION = (
    "unknown variant `{action}`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel`"
)

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
    """A refused API call: ``status`` (400 unless told) and Firecracker's message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def invalid_path(method: str, path: str) -> ApiError:
    return ApiError(f"Invalid request method and/or path: {method} {path}.")


def validate(kind: str, body: Any) -> dict[str, Any]:
    """``body`` checked against the schema of ``kind``, as serde would deserialize it."""
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


def check_resource_path(kind: str, parts: list[str], *, body: dict[str, Any]) -> None:
    """``PUT /drives/<id>`` and ``/network-interfaces/<id>``: valid ids, path id = body id."""
    check_id(parts[1])
    body_id = body["drive_id" if kind == "drives" else "iface_id"]
    check_id(body_id)
    if parts[1] != body_id:
        raise ApiError("The id from the path does not match the id from the body!")


def check_patch(kind: str, *, started: bool) -> None:
    """The PATCH calls: devices only after boot, the machine configuration only before."""
    if not started and kind != "machine-config":
        raise ApiError(BEFORE)
    if started and kind == "machine-config":
        raise ApiError(AFTER)
