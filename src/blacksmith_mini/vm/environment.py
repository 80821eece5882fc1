"""The environment host processes of a VM start with: never a GitHub credential or our settings.

The local driver's runner gets only an allow-list (``local.runner_environment``); the
Firecracker driver's supervisor and Firecracker process get the control plane's environment
without our settings (``BLACKSMITH_*``), GitHub's variables (``GITHUB_TOKEN``...) or anything
named like a secret.
"""

from __future__ import annotations

import os
import re

SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PRIVATE|CREDENTIAL|(^|_)KEY($|_)", re.IGNORECASE)


def host_environment() -> dict[str, str]:
    """The control plane's environment, less settings, GitHub variables and secrets."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BLACKSMITH_", "GITHUB_", "GH_")) and not SECRET_NAME.search(key)
    }
