"""Logging set-up: readable console lines or JSON, with known secrets masked on every line.

The standard library is enough for what we need (two formatters, a filter that adds the
``vm_id``/``job_id`` context variables, a filter that masks secrets), so no logging library is
a dependency (structlog was declared and never used; it is gone).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator

VM_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("vm_id", default=None)
JOB_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar("job_id", default=None)


@contextlib.contextmanager
def bound(*, vm_id: int | None = None, job_id: int | None = None) -> Iterator[None]:
    """Every log line inside carries these ids (``vm_id``, ``job_id``)."""
    vm_token = VM_ID.set(vm_id)
    job_token = JOB_ID.set(job_id)
    try:
        yield
    finally:
        VM_ID.reset(vm_token)
        JOB_ID.reset(job_token)


class ContextIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "vm_id"):
            record.vm_id = VM_ID.get()
        if not hasattr(record, "job_id"):
            record.job_id = JOB_ID.get()
        return True


class SecretMask(logging.Filter):
    """Replaces every configured secret in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry["vm_id"] = getattr(record, "vm_id", None)
        entry["job_id"] = getattr(record, "job_id", None)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(*, level: str, json_format: bool, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s [vm=%(vm_id)s job=%(job_id)s]: %(message)s"
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    handler.addFilter(ContextIds())
    handler.addFilter(SecretMask(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx2", "httpcore", "uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
