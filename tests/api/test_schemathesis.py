"""Property-based API fuzzing: every operation of ``/openapi.json`` must never answer a 5xx.

The app is driven in process through schemathesis' ASGI support, which runs the app's
lifespan (so the control loop, the store and the simulated GitHub are live) and ends it after
each test. ``FreshApp`` gives every lifespan a new app on a new data dir, so each operation's
test starts from a clean, running control plane (a stopped ``Runtime`` cannot start again).
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import create_app

MAX_EXAMPLES = 25


def new_app() -> tuple[Any, pathlib.Path]:
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="bm-schemathesis-"))
    config = settings_mod.load(simulate=True, data_dir=data_dir)
    config.simulator.rate_per_min = 0
    config.server.drain_seconds = 0
    return create_app(config), data_dir


class FreshApp:
    """An ASGI app whose every lifespan runs a new Blacksmith Mini app in simulate mode."""

    def __init__(self) -> None:
        self.current: Any = None
        self.data_dir: pathlib.Path | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self.current is None:
            self.current, self.data_dir = new_app()
        if scope["type"] != "lifespan":
            await self.current(scope, receive, send)
            return
        try:
            await self.current(scope, receive, send)
        finally:  # the lifespan ended: its VMs are stopped; drop the app and its data
            self.current = None
            if self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)


def load_schema() -> Any:
    """The app's OpenAPI document, read without starting anything, bound to a ``FreshApp``
    (what ``from_asgi`` does, minus a control plane started at collection time)."""
    probe, data_dir = new_app()
    try:
        loaded = schemathesis.openapi.from_dict(probe.openapi())
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    loaded.app = FreshApp()
    loaded.location = "/openapi.json"
    return loaded


SCHEMA = load_schema()
# One test per operation, named after it (schemathesis' own ``parametrize`` cannot rename
# its items under pytest 9); schemathesis ends the app's lifespan after each.
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_operation_answers_a_server_error(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=[not_a_server_error])

    call()


def test_every_api_route_is_fuzzed() -> None:
    labels = {operation.label for operation in OPERATIONS}
    assert len(labels) >= 10, labels
    for expected in ("GET /api/status", "GET /api/vms/{vm_id}", "POST /api/simulator/jobs"):
        assert expected in labels
