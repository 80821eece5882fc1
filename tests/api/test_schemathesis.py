"""The API document tells the truth: ``schemathesis run --checks all`` finds nothing.

The test runs schemathesis' own engine (what ``schemathesis run`` runs: the examples,
coverage, fuzzing and stateful phases, every check) in process against the app through its
ASGI support, which runs the app's lifespan, so the control loop, the store and the simulated
GitHub are live. It is deterministic (a fixed seed, derandomized Hypothesis, no example
database, one worker) and bounded (``MAX_EXAMPLES`` per operation and phase).

A failure is reported with its check, operation and a curl line to reproduce it against
``blacksmith-mini up --simulate``; ``schemathesis run http://127.0.0.1:8000/openapi.json
--checks all`` is the same run over the network.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi

from blacksmith_mini import settings as settings_mod
from blacksmith_mini.api.app import PUBLIC_PATHS, create_app

MAX_EXAMPLES = 20
SEED = 20_240_610


def new_app(data_dir: pathlib.Path) -> FastAPI:
    config = settings_mod.load(simulate=True, data_dir=data_dir)
    config.simulator.rate_per_min = 0
    config.server.drain_seconds = 0
    return create_app(config)


def schemathesis_config() -> SchemathesisConfig:
    """``schemathesis run --checks all --seed SEED --max-examples MAX_EXAMPLES -w 1``, plus
    derandomized generation without an example database."""
    # ``GET /api/events`` streams until the client goes: read its first event, not 10 s of it.
    config = SchemathesisConfig.from_dict({"max-stream-events": 1})
    config.update(seed=SEED, max_failures=None)
    project = config.projects.override
    project.update(workers=1)
    project.checks.update(included_check_names=["all"])
    project.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    return config


@pytest.fixture
def app() -> Iterator[FastAPI]:
    """One app for the whole run; schemathesis starts its lifespan on the first request."""
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="bm-schemathesis-"))
    try:
        yield new_app(data_dir)
    finally:
        asgi.shutdown_lifespans()
        shutil.rmtree(data_dir, ignore_errors=True)


def problems(stream: Any) -> tuple[list[str], set[str]]:
    """Every failed check and every error of a run, readable; and the operations tested."""
    found: list[str] = []
    tested: set[str] = set()
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            tested.add(event.recorder.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        curl = check.failure_info.code_sample
                        found.append(f"{event.recorder.label} [{check.name}] {failure.title}: "
                                     f"{failure.message}\n    {curl}")  # fmt: skip
        elif isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, events.FatalError):
            found.append(f"fatal: {event.exception!r}")
    return sorted(set(found)), tested


def test_schemathesis_run_with_all_checks_finds_nothing(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_dict(app.openapi(), config=schemathesis_config())
    schema.app = app
    schema.location = "/openapi.json"
    found, tested = problems(from_schema(schema).execute())
    assert not found, "\n".join(found)
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert operations <= tested, operations - tested


def test_every_api_route_is_in_the_document() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        document = new_app(pathlib.Path(data_dir)).openapi()
    labels = {f"{m.upper()} {path}" for path, ops in document["paths"].items() for m in ops}
    assert len(labels) >= 18, labels
    for expected in ("GET /api/status", "GET /api/vms/{vm_id}", "POST /api/simulator/jobs"):
        assert expected in labels


def test_access_control_answers_are_documented() -> None:
    """401 and 413 on every guarded operation, 403 on every guarded change, never on the
    public ones; a 422 always in FastAPI's validation-error shape."""
    with tempfile.TemporaryDirectory() as data_dir:
        document = new_app(pathlib.Path(data_dir)).openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            if path.startswith(PUBLIC_PATHS):
                assert not {"401", "403"} <= documented or "webhooks" in path, (method, path)
                continue
            expected = {"401", "413"} | ({"403"} if method != "get" else set())
            assert expected <= documented, (method, path, documented)
            if "422" in documented:
                schema = operation["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/HTTPValidationError"}
