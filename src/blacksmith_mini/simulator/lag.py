"""What GitHub's REST API shows lags behind what happened (``../shared/reference/field.md``).

``Lagged`` keeps, per object, snapshots of the fields REST reports (a runner's ``busy`` and
``status``, a job's status and runner, a run's status) with the time each was true, and
renders an object as it was ``seconds`` ago. The broker and webhooks read the live objects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

FIELDS = {
    "job": (
        "status",
        "conclusion",
        "started_at",
        "completed_at",
        "runner_id",
        "runner_name",
        "runner_group_id",
        "assigned_at",
    ),
    "run": ("status", "conclusion", "updated_at"),
    "runner": ("status", "busy"),
}
T = TypeVar("T")


class Lagged:
    def __init__(self, clock: Callable[[], float], *, seconds: float = 0.0) -> None:
        self.clock = clock
        self.seconds = seconds
        self._history: dict[tuple[str, int], list[tuple[float, dict[str, Any]]]] = {}

    def record(self, kind: str, item: Any) -> None:
        """Note ``item``'s REST-visible fields as they are now (call after every change)."""
        snapshot = {name: getattr(item, name) for name in FIELDS[kind]}
        history = self._history.setdefault((kind, item.id), [])
        now = self.clock()
        if history and history[-1][1] == snapshot:
            return
        history.append((now, snapshot))
        cutoff = now - max(self.seconds, 0.0)
        while len(history) > 1 and history[1][0] <= cutoff:
            del history[0]

    def forget(self, kind: str, item_id: int) -> None:
        self._history.pop((kind, item_id), None)

    def view(self, kind: str, item: T) -> T:
        """``item`` as REST showed it ``seconds`` ago (its first known state if younger)."""
        history = self._history.get((kind, getattr(item, "id", 0)))
        if self.seconds <= 0 or not history:
            return item
        cutoff = self.clock() - self.seconds
        chosen = history[0][1]
        for at, snapshot in history:
            if at > cutoff:
                break
            chosen = snapshot
        return dataclasses.replace(item, **chosen)  # type: ignore[type-var]
