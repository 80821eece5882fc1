"""The agent's journal: the commands it carried out and their results, on disk.

A command is journaled before it is acknowledged, so a command delivered again after a lost
acknowledgement or a reconnect is answered from the journal instead of being done twice. The
journal keeps the newest ``limit`` entries (older commands are long acknowledged).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
from typing import Any


class Journal:
    def __init__(self, path: pathlib.Path, *, limit: int = 20_000) -> None:
        self.path = path
        self.limit = limit
        self._done: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self._done = {str(k): v for k, v in loaded.items() if isinstance(v, dict)}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._done.get(key)

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Record ``key``'s result durably (write, fsync, rename)."""
        self._done[key] = result
        while len(self._done) > self.limit:
            self._done.pop(next(iter(self._done)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        with scratch.open("w") as handle:
            json.dump(self._done, handle)
            handle.flush()
            os.fsync(handle.fileno())
        scratch.replace(self.path)
