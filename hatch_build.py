"""Wheel build hook: puts the built dashboard and the guest image sources into the wheel.

``frontend/out`` (made by ``bash scripts/build-frontend.sh``) becomes
``blacksmith_mini/_dashboard`` and ``images/`` becomes ``blacksmith_mini/_images``, so an
installed wheel serves the dashboard at ``/`` and runs ``blacksmith-mini image build`` without a
checkout. A wheel without a dashboard is refused with the command that builds it;
``BLACKSMITH_WHEEL_DASHBOARD`` names another built export (used by the wheel test). An editable
install (``uv sync`` in a checkout) is left alone: it serves ``frontend/out`` and ``images/``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class DashboardAndImages(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":  # uv sync: the checkout serves
            return
        root = Path(self.root)
        dashboard = Path(os.environ.get("BLACKSMITH_WHEEL_DASHBOARD") or root / "frontend" / "out")
        if not (dashboard / "index.html").is_file():
            raise RuntimeError(
                f"the dashboard is not built ({dashboard / 'index.html'} is missing): run "
                "`bash scripts/build-frontend.sh` first, or `make wheel`, which does both"
            )
        build_data["force_include"][str(dashboard)] = "blacksmith_mini/_dashboard"
        build_data["force_include"][str(root / "images")] = "blacksmith_mini/_images"
