"""The seed's environment variable names (``GITHUB_TOKEN``, ``REPO_OWNER``, ``MAX_VMS``, ...)
mapped onto the nested settings."""

from __future__ import annotations

import os
from typing import Any

from pydantic_settings import PydanticBaseSettingsSource


class SeedEnvSource(PydanticBaseSettingsSource):
    """The seed's environment variable names, mapped onto the nested settings."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = os.environ
        found: dict[str, Any] = {}
        github: dict[str, Any] = {}
        if env.get("GITHUB_TOKEN"):
            github["token"] = env["GITHUB_TOKEN"]
        if env.get("REPO_OWNER"):
            github["owner"] = env["REPO_OWNER"]
        if env.get("REPO_NAME"):
            github["repositories"] = [env["REPO_NAME"]]
        if env.get("POLL_INTERVAL"):
            github["poll_interval"] = env["POLL_INTERVAL"]
        vm: dict[str, Any] = {}
        if env.get("MAX_VMS"):
            vm["max_vms"] = env["MAX_VMS"]
        if env.get("SSH_KEY_PATH"):
            vm["ssh_key_path"] = env["SSH_KEY_PATH"]
        if github:
            found["github"] = github
        if vm:
            found["vm"] = vm
        return found
