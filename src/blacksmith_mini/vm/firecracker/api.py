"""A small typed client of Firecracker's HTTP API (v1.16.1) over its Unix socket, on httpx2.

One method per call the driver makes, in the documented boot order (logger, metrics,
machine-config, boot-source, drives, network-interfaces, mmds/config, mmds, InstanceStart).
Every call has a time-out; any non-2xx answer becomes a :class:`FirecrackerApiError` whose text
carries Firecracker's ``fault_message``. Used by ``driver.py`` only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2

from blacksmith_mini.vm.firecracker import naming

JsonObject = dict[str, Any]


class FirecrackerApiError(Exception):
    """A call failed: Firecracker said no (``status``, ``fault_message``) or did not answer."""

    def __init__(self, *, method: str, path: str, status: int | None, fault_message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.fault_message = fault_message
        where = f"{method} {path}"
        if status is None:
            super().__init__(f"Firecracker API {where}: {fault_message}")
        else:
            super().__init__(f"Firecracker API {where} -> {status}: {fault_message}")


class FirecrackerApi:
    """Client of one Firecracker process's API socket."""

    def __init__(self, *, socket_path: Path, timeout: float) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        # Plain HTTP over a Unix socket: no TLS, so no CA bundle to load (~45 ms a client).
        self._client = httpx2.AsyncClient(
            transport=httpx2.AsyncHTTPTransport(uds=str(socket_path), verify=False),
            base_url="http://localhost",
            timeout=httpx2.Timeout(timeout),
            verify=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def request(self, method: str, path: str, body: JsonObject | None = None) -> JsonObject:
        """Send one call; return the JSON answer (``{}`` for 204) or raise FirecrackerApiError."""
        try:
            response = await self._client.request(
                method,
                path,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
        except httpx2.TimeoutException as exc:
            raise FirecrackerApiError(
                method=method,
                path=path,
                status=None,
                fault_message=f"no answer within {self._timeout:g}s ({type(exc).__name__})",
            ) from exc
        except httpx2.TransportError as exc:
            raise FirecrackerApiError(
                method=method,
                path=path,
                status=None,
                fault_message=f"connection failed, the process probably died ({exc!r})",
            ) from exc
        if response.status_code >= 300:
            raise FirecrackerApiError(
                method=method,
                path=path,
                status=response.status_code,
                fault_message=_fault_message(response),
            )
        if not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {"value": answer}

    async def wait_until_ready(self, *, deadline: float) -> JsonObject:
        """Poll until the socket exists and ``GET /`` answers; return the instance info."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.socket_path.exists():
                try:
                    return await self.describe_instance()
                except FirecrackerApiError as exc:
                    last = exc
            await anyio.sleep(0.01)
        raise FirecrackerApiError(
            method="GET",
            path="/",
            status=None,
            fault_message=f"API socket {self.socket_path} not ready in time ({last or 'absent'})",
        )

    async def describe_instance(self) -> JsonObject:
        """``GET /``: ``{id, state, vmm_version, app_name}``."""
        return await self.request("GET", "/")

    async def put_logger(self, *, log_path: str, level: str) -> None:
        """``PUT /logger``: first, so that later errors are logged."""
        await self.request(
            "PUT",
            "/logger",
            {"log_path": log_path, "level": level, "show_level": True, "show_log_origin": False},
        )

    async def put_metrics(self, *, metrics_path: str) -> None:
        """``PUT /metrics``."""
        await self.request("PUT", "/metrics", {"metrics_path": metrics_path})

    async def put_machine_config(self, *, vcpus: int, memory_mib: int) -> None:
        """``PUT /machine-config``."""
        await self.request(
            "PUT",
            "/machine-config",
            {"vcpu_count": vcpus, "mem_size_mib": memory_mib, "smt": False},
        )

    async def put_boot_source(self, *, kernel_image_path: str, boot_args: str) -> None:
        """``PUT /boot-source``."""
        await self.request(
            "PUT", "/boot-source", {"kernel_image_path": kernel_image_path, "boot_args": boot_args}
        )

    async def put_root_drive(self, *, drive_id: str, path_on_host: str) -> None:
        """``PUT /drives/{id}`` for the writable root device."""
        naming.check_resource_id(drive_id)
        await self.request(
            "PUT",
            f"/drives/{drive_id}",
            {
                "drive_id": drive_id,
                "path_on_host": path_on_host,
                "is_root_device": True,
                "is_read_only": False,
            },
        )

    async def put_network_interface(
        self, *, iface_id: str, host_dev_name: str, guest_mac: str
    ) -> None:
        """``PUT /network-interfaces/{id}``: the tap is opened here."""
        naming.check_resource_id(iface_id)
        await self.request(
            "PUT",
            f"/network-interfaces/{iface_id}",
            {"iface_id": iface_id, "host_dev_name": host_dev_name, "guest_mac": guest_mac},
        )

    async def put_mmds_config(self, *, iface_ids: list[str]) -> None:
        """``PUT /mmds/config``: MMDS V2 on the given interfaces (after they exist)."""
        await self.request(
            "PUT", "/mmds/config", {"network_interfaces": iface_ids, "version": "V2"}
        )

    async def put_mmds(self, data: JsonObject) -> None:
        """``PUT /mmds``: replace the whole metadata store."""
        await self.request("PUT", "/mmds", data)

    async def get_mmds(self) -> JsonObject:
        """``GET /mmds``."""
        return await self.request("GET", "/mmds")

    async def instance_start(self) -> None:
        """``PUT /actions InstanceStart``: once only, never retried."""
        await self.request("PUT", "/actions", {"action_type": "InstanceStart"})

    async def send_ctrl_alt_del(self) -> None:
        """``PUT /actions SendCtrlAltDel``: ask the guest to reboot, which ends Firecracker."""
        await self.request("PUT", "/actions", {"action_type": "SendCtrlAltDel"})

    # --- snapshots (docs/snapshotting; the fake enforces their rules) ----------------------

    async def pause(self) -> None:
        """``PATCH /vm Paused``: the vCPUs stop (a snapshot can be made only now)."""
        await self.request("PATCH", "/vm", {"state": "Paused"})

    async def resume(self) -> None:
        """``PATCH /vm Resumed``."""
        await self.request("PATCH", "/vm", {"state": "Resumed"})

    async def create_snapshot(self, *, snapshot_path: str, mem_file_path: str) -> None:
        """``PUT /snapshot/create``, a full snapshot of a Paused microVM."""
        await self.request(
            "PUT",
            "/snapshot/create",
            {
                "snapshot_type": "Full",
                "snapshot_path": snapshot_path,
                "mem_file_path": mem_file_path,
            },
        )

    async def load_snapshot(
        self,
        *,
        snapshot_path: str,
        mem_file_path: str,
        network_overrides: dict[str, str],
        clock_realtime: bool,
    ) -> None:
        """``PUT /snapshot/load``: the first configuring call of a fresh process (only the
        logger and metrics may precede it); the microVM comes back Paused."""
        await self.request(
            "PUT",
            "/snapshot/load",
            {
                "snapshot_path": snapshot_path,
                "mem_backend": {"backend_type": "File", "backend_path": mem_file_path},
                "network_overrides": [
                    {"iface_id": iface, "host_dev_name": tap}
                    for iface, tap in network_overrides.items()
                ],
                "clock_realtime": clock_realtime,
                "resume_vm": False,
            },
        )


def _fault_message(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("fault_message"), str):
        return str(body["fault_message"])
    return json.dumps(body)[:500]
