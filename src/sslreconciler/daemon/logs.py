"""structlog set-up: JSON lines for journald when stdout is not a terminal, readable lines on one."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(log_format: str = "auto", level: str = "info") -> None:
    json_lines = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    renderer: Any = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    _route_core_logs()


class _CoreRecords(logging.Handler):
    """The core logs through the standard library (it knows nothing of structlog): its records become
    lines of this log, with the fields they carry (reconcile/internal_error.py: the traceback)."""

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(getattr(record, "fields", None) or {})
        event = fields.pop("event", None) or record.getMessage()
        get_logger().log(record.levelno, event, logger=record.name, **fields)


def _route_core_logs() -> None:
    """Once, however often ``configure`` runs (it does again on SIGHUP)."""
    core = logging.getLogger("sslreconciler")
    if not any(isinstance(h, _CoreRecords) for h in core.handlers):
        core.addHandler(_CoreRecords())
    core.propagate = False  # not again on stderr through the last-resort handler


def get_logger() -> Any:
    return structlog.get_logger("sslreconciler")
