"""Console markers: the lines of the serial console that tell the driver what the guest did.

The runner's own lines ("Listening for Jobs", "Running job: X", "Job X completed with result: R")
and the guest agent's (``blacksmith-agent: ...``, see images/guest/blacksmith-agent.py, which
repeats these strings because it is stdlib-only and runs in the guest). The per-VM supervisor
scans every console line with :func:`scan` and records each event once in ``events.jsonl``.
"""

from __future__ import annotations

import re

AGENT_PREFIX = "blacksmith-agent: "
BOOT_DATA_READ = AGENT_PREFIX + "boot-data-read"

BOOT_DATA_READ_EVENT = "boot_data_read"
RUNNER_ONLINE = "runner_online"
JOB_STARTED = "job_started"
JOB_FINISHED = "job_finished"
RUNNER_EXITED = "runner_exited"

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (BOOT_DATA_READ_EVENT, re.compile(re.escape(BOOT_DATA_READ) + r"\b()")),
    (RUNNER_ONLINE, re.compile(r"Listening for Jobs()")),
    (JOB_STARTED, re.compile(r"Running job: (.+?)\s*$")),
    (JOB_FINISHED, re.compile(r"Job .+ completed with result: (\w+)")),
    (RUNNER_EXITED, re.compile(re.escape(AGENT_PREFIX) + r"runner exited with code (-?\d+)")),
)


def scan(line: str) -> tuple[str, str] | None:
    """``(event, detail)`` if ``line`` is a marker, else None."""
    for event, pattern in _PATTERNS:
        match = pattern.search(line)
        if match:
            return event, match.group(1)
    return None
