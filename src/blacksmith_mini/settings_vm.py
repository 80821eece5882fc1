"""The ``[vm]`` settings: the driver, the fleet's limits and each VM state's deadline."""

from __future__ import annotations

import pathlib
from typing import Literal

from pydantic import BaseModel, Field

from blacksmith_mini.domain import model
from blacksmith_mini.vm.firecracker import config as fc_config


class TimeoutSettings(BaseModel):
    pending: float = Field(default=120.0, gt=0)
    boot: float = Field(default=180.0, gt=0)
    idle: float = Field(default=300.0, gt=0)
    max_lifetime: float = Field(default=6 * 3600.0, gt=0)
    stopping: float = Field(default=30.0, gt=0)

    def to_domain(self) -> model.Timeouts:
        return model.Timeouts(**self.model_dump())


class VmSettings(BaseModel):
    driver: Literal["local", "firecracker", "remote"] = Field(
        default="local",
        description="local: the runner as a host process (no isolation); firecracker: "
        "microVMs; remote: VMs on hosts running `blacksmith-mini agent` (see [hosts]).",
    )
    max_vms: int = Field(default=5, ge=0, le=100_000)
    max_starts_per_tick: int = Field(
        default=10,
        ge=0,
        le=100_000,
        description="VM starts one tick makes at most (each registers a runner: about a "
        "second apiece at github.com's pace for mutations); the next tick follows at once "
        "with the rest. 0: no limit.",
    )
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    runner_command: list[str] = Field(
        default_factory=list,
        description="Local driver with real GitHub: the runner argv; '{jitconfig}' is replaced "
        "by the encoded JIT config, e.g. ['/opt/actions-runner/run.sh', '--jitconfig', "
        "'{jitconfig}'].",
    )
    console_max_bytes: int = Field(default=256 * 1024, ge=4096)
    ssh_key_path: pathlib.Path | None = None
    firecracker: fc_config.FirecrackerSettings = Field(
        default_factory=fc_config.FirecrackerSettings,
        description="[vm.firecracker]: see docs/FIRECRACKER.md.",
    )
