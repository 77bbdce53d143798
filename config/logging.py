"""Structured logs: every line of a backup's or restore's work carries its id.

``log_context(backup_id=...)`` binds ids for the current task (a contextvar, copied into
the streaming thread); ``ContextFilter`` adds them to each record and ``JsonFormatter``
writes one JSON object per line when STRONGBOX_LOG_JSON is on.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from datetime import UTC, datetime

_context: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "strongbox_log_context", default=None
)


def _ids() -> dict:
    return _context.get() or {}


@contextlib.contextmanager
def log_context(**ids):
    token = _context.set({**_ids(), **{k: str(v) for k, v in ids.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> dict:
    return dict(_ids())


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _ids().items():
            setattr(record, key, value)
        record.context = " ".join(f"{k}={v}" for k, v in _ids().items())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_ids(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
