"""An internal error (a bug, not a refusal): where it was raised, and its traceback logged once.

``Reconciler.run`` turns whatever breaks inside into an ``internal`` finding; this names the module and
line in that finding (``reconcile/decide.py:123``) and logs the traceback, once per distinct error
(same type, same place) per ssl dir in this process, so a daemon hitting the same bug every reconcile
(across reloads too) does not fill the journal.

Never a secret in the log: the traceback is the stack (file, line, function, that line of code) and the
exception types, never local variables, and never an exception's message but an ``OSError``'s (errno,
its text and the file name): a ``ValueError`` may quote what was read (``int()`` quotes its input,
parsers quote a field), and anything else may carry what a password or key file held.

The core logs through the standard library (``logging``, logger ``sslreconciler.reconcile``): a one-shot
configures no logging, so Python's last-resort handler prints the record on stderr (stdout keeps the
report); the daemon routes the ``sslreconciler`` loggers into its own structured log (daemon/logs.py).
"""

from __future__ import annotations

import logging
import threading
import traceback
from pathlib import Path
from types import TracebackType

_PACKAGE = Path(__file__).resolve().parent.parent  # src/sslreconciler
_LOG = logging.getLogger("sslreconciler.reconcile")
# What this process has logged already: (ssl dir, type, where it was raised).
_LOGGED: set[tuple[str, str, str]] = set()
_LOGGED_LOCK = threading.Lock()


def raised_at(exc: BaseException) -> str:
    """Where ``exc`` was raised in this package, relative to it (``reconcile/decide.py:123``): the
    innermost frame of ours, so an error inside a library names the line of ours that called it."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = Path(frame.filename)
        if path.is_relative_to(_PACKAGE):
            return f"{path.relative_to(_PACKAGE).as_posix()}:{frame.lineno}"
    last = frames[-1] if frames else None
    return f"{Path(last.filename).name}:{last.lineno}" if last else "unknown"


def log_once(exc: BaseException, ssl_dir: str) -> str:
    """Log ``exc``'s traceback (once per ssl dir, type and place); where it was raised."""
    where = raised_at(exc)
    kind = type(exc).__qualname__
    with _LOGGED_LOCK:
        if (ssl_dir, kind, where) in _LOGGED:
            return where
        _LOGGED.add((ssl_dir, kind, where))
    trace = "".join(_format(exc))
    _LOG.error(
        "sslreconciler: %s: reconcile broke off unexpectedly (%s, raised at %s); the traceback, without "
        "locals or messages:\n%s",
        ssl_dir,
        kind,
        where,
        trace.rstrip("\n"),
        extra={
            "fields": {
                "event": "reconcile broke off unexpectedly",
                "ssl_dir": ssl_dir,
                "error": kind,
                "where": where,
                "exception": trace,  # structlog's key for a traceback: its console renderer prints it as is
            }
        },
    )
    return where


def _format(exc: BaseException, seen: set[int] | None = None) -> list[str]:
    """``traceback.format_exception`` without the messages it could leak (see the module's note),
    the chain of causes and contexts included."""
    seen = seen if seen is not None else set()
    seen.add(id(exc))
    lines: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += _format(exc.__cause__, seen)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif exc.__context__ is not None and not exc.__suppress_context__ and id(exc.__context__) not in seen:
        lines += _format(exc.__context__, seen)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    lines += _stack(exc.__traceback__)
    lines.append(f"{_shown(exc)}\n")
    return lines


def _stack(tb: TracebackType | None) -> list[str]:
    if tb is None:
        return []
    return ["Traceback (most recent call last):\n", *traceback.StackSummary.extract(traceback.walk_tb(tb)).format()]


def _shown(exc: BaseException) -> str:
    name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    if isinstance(exc, OSError):  # errno, its text, the file names: never what a file holds
        return f"{name}: {exc}"
    return f"{name} (message not logged: it may quote what was read)"
