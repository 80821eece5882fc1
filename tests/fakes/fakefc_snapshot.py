"""The fake Firecracker's snapshots: ``PATCH /vm``, ``PUT /snapshot/create`` and ``/load``.

The rules of Firecracker v1.16.1 (``rpc_interface.rs``, ``docs/snapshotting``) it enforces:

- ``snapshot/load`` only on a fresh process: any boot-specific call before it (machine
  config, boot source, drives, interfaces, MMDS config, vsock, entropy, InstanceStart; not
  the logger or metrics) makes it ``LoadSnapshotNotAllowed``; after a load the microVM is
  Paused (Running with ``resume_vm``) and every pre-boot call is refused as after a boot.
- ``snapshot/create`` only after boot and only while Paused.
- ``network_overrides`` only for interfaces the snapshot has; drives and the memory file must
  be where the snapshot says; a memory file changed since it was made is refused (the real
  VMM maps it ``MAP_PRIVATE`` and would run garbage: we check a fingerprint recorded at
  create, the first MiB's SHA-256 and the modification time).
- MMDS data is not in a snapshot: a loaded VM's store is empty.

The "snapshot" is the VM's configuration as JSON and a memory file of ``mem_size_mib``
pseudo-memory (its first MiB written, the rest sparse). Messages not confirmed against the
real VMM say so in a comment. Stdlib only.
"""

# ruff: noqa: E501  (Firecracker's messages are kept verbatim)

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

from fakefc_rules import AFTER, BEFORE, ApiError

if TYPE_CHECKING:
    from fakefc_vmm import Vmm

NOT_ALLOWED = "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources."
# UNCONFIRMED wording (the rule is confirmed: snapshot/create needs a Paused microVM).
NOT_PAUSED = "Create snapshot error: Cannot create a snapshot of a microVM that is not paused."
LOAD_FIELDS = {
    "snapshot_path": str,
    "mem_file_path": str,
    "mem_backend": dict,
    "enable_diff_snapshots": bool,
    "track_dirty_pages": bool,
    "resume_vm": bool,
    "network_overrides": list,
    "vsock_override": dict,
    "clock_realtime": bool,
}
CREATE_FIELDS = {"snapshot_type": str, "snapshot_path": str, "mem_file_path": str}
MIB = 1 << 20


def _fields(body: Any, allowed: dict[str, type], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(
            "An error occurred when deserializing the json body of a request: invalid type."
        )
    for key, value in body.items():
        if key not in allowed:
            expected = ", ".join(f"`{k}`" for k in allowed)
            raise ApiError(
                "An error occurred when deserializing the json body of a request: "
                f"unknown field `{key}`, expected one of {expected}."
            )
        if not isinstance(value, allowed[key]) or (allowed[key] is int and isinstance(value, bool)):
            raise ApiError(
                f"An error occurred when deserializing the json body of a request: invalid type for `{key}`."
            )
    for key in required:
        if key not in body:
            raise ApiError(
                f"An error occurred when deserializing the json body of a request: missing field `{key}`."
            )
    return body


def _sha256(path: str) -> str:
    """The memory file's fingerprint: its first MiB's SHA-256 (where create writes) and its
    modification time, so any rewrite shows without reading gigabytes per load."""
    with open(path, "rb") as handle:
        head = handle.read(MIB)
    return f"{hashlib.sha256(head).hexdigest()}:{os.stat(path).st_mtime_ns}"


def patch_vm(vmm: Vmm, body: Any) -> None:
    """``PATCH /vm {"state": "Paused"|"Resumed"}``: pause or resume the vCPUs."""
    if not vmm.started:
        raise ApiError(BEFORE)
    state = body.get("state") if isinstance(body, dict) else None
    if state not in ("Paused", "Resumed") or len(body) != 1:
        raise ApiError(
            "An error occurred when deserializing the json body of a request: unknown variant, expected `Paused` or `Resumed`."
        )
    if state == "Paused":
        vmm.paused = True
        if vmm.guest is not None:
            vmm.guest.freeze()
    else:
        vmm.paused = False
        if vmm.guest is not None:
            vmm.guest.thaw()


def create(vmm: Vmm, body: Any) -> None:
    """``PUT /snapshot/create``: the configuration and a memory file, while Paused."""
    body = _fields(body, CREATE_FIELDS, ("snapshot_path", "mem_file_path"))
    if not vmm.started:
        raise ApiError(BEFORE)
    if not vmm.paused:
        raise ApiError(NOT_PAUSED)
    if body.get("snapshot_type", "Full") not in ("Full", "Diff"):
        raise ApiError("Create snapshot error: unknown snapshot type.")
    memory = body["mem_file_path"]
    with open(memory, "wb") as handle:
        handle.write(hashlib.sha256(vmm.instance_id.encode()).digest() * (MIB // 32))
        handle.truncate(int(vmm.machine["mem_size_mib"]) * MIB)
    state = {
        "version": "fake-1",
        "machine": vmm.machine,
        "boot_source": vmm.boot_source,
        "drives": vmm.drives,
        "ifaces": vmm.ifaces,
        "mmds_config": vmm.mmds_config,
        "mem_sha256": _sha256(memory),
        "mem_size": os.path.getsize(memory),
    }
    with open(body["snapshot_path"], "w") as handle:
        json.dump(state, handle)


def load(vmm: Vmm, body: Any) -> None:
    """``PUT /snapshot/load``: only on a fresh process; the VM comes back Paused."""
    body = _fields(body, LOAD_FIELDS, ("snapshot_path",))
    if vmm.started:
        raise ApiError(AFTER)
    if vmm.boot_path:
        raise ApiError(NOT_ALLOWED)
    backend = body.get("mem_backend")
    if (backend is None) == ("mem_file_path" not in body):
        raise ApiError(
            "An error occurred when deserializing the json body of a request: exactly one of `mem_backend` and `mem_file_path` is required."
        )
    memory = body.get("mem_file_path") or (backend or {}).get("backend_path", "")
    if backend is not None and backend.get("backend_type") not in ("File", "Uffd"):
        raise ApiError(
            "An error occurred when deserializing the json body of a request: invalid `backend_type`."
        )
    try:
        with open(body["snapshot_path"]) as handle:
            state = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ApiError(
            f"Load snapshot error: Failed to restore from snapshot: Cannot load the microVM state: {exc}"
        ) from None
    if not os.path.isfile(memory):
        raise ApiError(
            f"Load snapshot error: Failed to restore from snapshot: Cannot open the memory file: No such file or directory (os error 2): {memory}"
        )
    if os.path.getsize(memory) != state["mem_size"] or _sha256(memory) != state["mem_sha256"]:
        # UNCONFIRMED: the real VMM maps whatever is there; we refuse a changed file outright.
        raise ApiError(
            "Load snapshot error: Failed to restore from snapshot: the memory file does not match the snapshot"
        )
    ifaces = {name: dict(iface) for name, iface in state["ifaces"].items()}
    for override in body.get("network_overrides", []):
        iface = override.get("iface_id") if isinstance(override, dict) else None
        if iface not in ifaces or not isinstance(override.get("host_dev_name"), str):
            raise ApiError(
                f"Load snapshot error: Failed to restore from snapshot: Invalid network override: no network interface with id {iface!r} in the snapshot"
            )
        ifaces[iface]["host_dev_name"] = override["host_dev_name"]
    for drive in state["drives"].values():
        if not os.path.isfile(drive.get("path_on_host", "")):
            raise ApiError(
                f"Load snapshot error: Failed to restore from snapshot: Block device backing file not found: {drive.get('path_on_host')}"
            )
    vmm.machine, vmm.boot_source = state["machine"], state["boot_source"]
    vmm.drives, vmm.ifaces, vmm.mmds_config = state["drives"], ifaces, state["mmds_config"]
    vmm.mmds = {}
    vmm.loaded_from = body["snapshot_path"]
    vmm.clock_realtime = bool(body.get("clock_realtime"))
    vmm.started = True
    vmm.paused = not body.get("resume_vm", False)
    vmm.restore_guest()
