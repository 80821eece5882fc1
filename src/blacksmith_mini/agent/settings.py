"""The agent's settings: where the control plane is, its host token, and how to run VMs.

From ``--config agent.toml``, the environment (``BLACKSMITH_AGENT_*``) and flags. There is
deliberately no database URL and no GitHub credential here: an agent holds its host token
only.
"""

from __future__ import annotations

import pathlib
import sys
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from blacksmith_mini.settings_cache import CacheSettings
from blacksmith_mini.vm.firecracker import config as fc_config

SIMULATED_RUNNER = [
    sys.executable,
    "-m",
    "blacksmith_mini.simulator.runner",
    "--jitconfig",
    "{jitconfig}",
]


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BLACKSMITH_AGENT_", env_nested_delimiter="__", extra="forbid"
    )

    control_plane: str = Field(
        default="http://127.0.0.1:8000", description="The control plane's URL (any replica)."
    )
    token: SecretStr | None = Field(default=None, description="This host's token (bmh_...).")
    token_file: pathlib.Path | None = Field(default=None, description="A file holding it.")
    data_dir: pathlib.Path = Field(
        default=pathlib.Path(".blacksmith-agent"),
        description="State: the journal of commands done and the VMs' directories.",
    )
    driver: Literal["local", "firecracker"] = Field(
        default="local", description="How VMs run: Firecracker microVMs, or local processes."
    )
    runner_command: list[str] = Field(
        default_factory=list,
        description="The local driver's runner command; `{jitconfig}` becomes the JIT config.",
    )
    simulated_runners: bool = Field(
        default=False, description="Run the simulator's runner (with a simulated GitHub)."
    )
    vcpus: int | None = Field(default=None, ge=1, description="Offered vCPUs (default: all).")
    memory_mib: int | None = Field(default=None, ge=128, description="Offered memory, MiB.")
    disk_mib: int | None = Field(default=None, ge=0, description="Offered disk, MiB.")
    console_max_bytes: int = Field(
        default=256 * 1024, ge=4096, description="Bound of each local VM's console log."
    )
    firecracker: fc_config.FirecrackerSettings = Field(
        default_factory=fc_config.FirecrackerSettings
    )
    cache: CacheSettings = Field(
        default_factory=CacheSettings,
        description="[cache]: the Actions cache this host serves its VMs (on by default with "
        "firecracker); its claims come from the control plane.",
    )

    def resolved_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        if self.token_file is not None:
            try:
                token = self.token_file.read_text().strip()
            except OSError as exc:
                raise ValueError(
                    f"token_file {self.token_file} cannot be read ({exc.strerror})"
                ) from exc
            if token:
                return token
        raise ValueError(
            "no host token: run `blacksmith-mini host add NAME` on the control plane and pass "
            "the token with --token-file (or BLACKSMITH_AGENT_TOKEN)"
        )

    def command(self) -> list[str]:
        if self.runner_command:
            return list(self.runner_command)
        if self.simulated_runners:
            return list(SIMULATED_RUNNER)
        raise ValueError(
            "the local driver needs runner_command (e.g. ['/opt/actions-runner/run.sh', "
            "'--jitconfig', '{jitconfig}']) or simulated_runners = true"
        )
