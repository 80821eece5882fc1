"""The fake Firecracker's test knobs (``FAKE_FC_*``), its serial console and shared paths.

``knob`` reads one environment knob; the fault knobs (:data:`FAULT_KNOBS`) may be limited to
the first fake process by ``FAKE_FC_FAULT_ONCE=<path>`` (the process that creates ``<path>``).
``console`` writes one line to stdout, the VM's serial console. Stdlib only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAULT_KNOBS = {
    "FAKE_FC_FAIL",
    "FAKE_FC_CRASH",
    "FAKE_FC_NO_GUEST",
    "FAKE_FC_IGNORE_CTRL_ALT_DEL",
    "FAKE_FC_RUNNER_DIR",
    "FAKE_FC_BOOT_DELAY",
}
_faulty: bool | None = None


def knob(name: str) -> str:
    """The test knob ``name`` ("" when unset, or when FAKE_FC_FAULT_ONCE chose another VM)."""
    global _faulty
    value = os.environ.get(name, "")
    once = os.environ.get("FAKE_FC_FAULT_ONCE")
    if not value or name not in FAULT_KNOBS or not once:
        return value
    if _faulty is None:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            _faulty = True
        except FileExistsError:
            _faulty = False
    return value if _faulty else ""


def console(line: str) -> None:
    """One line on the serial console (the fake's stdout), flushed at once."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
