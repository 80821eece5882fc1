"""The ``plane`` fixture: a control plane in remote mode as its own process (``harness``),
its agents and their VMs cleaned up after the test."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from hosts.harness import ControlPlane


@pytest.fixture
def plane(tmp_path: pathlib.Path) -> Iterator[ControlPlane]:
    found = ControlPlane(tmp_path / "control")
    try:
        yield found.start()
    finally:
        found.cleanup()
