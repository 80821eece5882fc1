"""An agent that does not serve the Actions cache does not load its web stack.

FastAPI and uvicorn are about a quarter of an idle agent's resident memory (bench:
``bench/hosts_memory.py``); only a host serving the cache needs them.
"""

from __future__ import annotations

import subprocess
import sys

WEB_STACK = ("fastapi", "uvicorn", "starlette")


def test_the_agent_command_loads_no_web_stack_until_the_cache_is_served() -> None:
    probe = (
        "import sys\n"
        "import blacksmith_mini.cli, blacksmith_mini.agent.main\n"
        f"print(sorted(m for m in {WEB_STACK!r} if m in sys.modules))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
