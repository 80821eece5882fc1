"""What this host offers: vCPUs, memory, disk, architecture, drivers and versions."""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import platform
import shutil

from blacksmith_mini.vm.remote import wire

ARCHES = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}


def memory_mib(meminfo: pathlib.Path = pathlib.Path("/proc/meminfo")) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1024


def detect(
    *,
    data_dir: pathlib.Path,
    driver: str,
    vcpus: int | None = None,
    memory: int | None = None,
    disk: int | None = None,
    versions: dict[str, str] | None = None,
) -> wire.HostReport:
    """This host's report; explicit sizes (settings) override what is detected."""
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        agent_version = importlib.metadata.version("blacksmith-mini")
    except importlib.metadata.PackageNotFoundError:
        agent_version = "unknown"
    return wire.HostReport(
        arch=ARCHES.get(platform.machine().lower(), "x64"),
        vcpus=vcpus or os.cpu_count() or 1,
        memory_mib=memory or memory_mib(),
        disk_mib=disk if disk is not None else shutil.disk_usage(data_dir).free // (1024 * 1024),
        drivers=[driver],
        versions={"agent": agent_version, "kernel": platform.release(), **(versions or {})},
    )
