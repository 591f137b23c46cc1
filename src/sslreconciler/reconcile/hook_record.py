"""The hook outcome record (``hook-results.json`` in the service's state dir): how a one-shot command
(`reconcile`, `pki install-bundle`, `web install|rollback`, `acme renew`) tells the running daemon what
its hooks did. The one-shot writes it after its hooks ran; the daemon watches its state dir, reads it
and shows the results in /health ``hooks``, the hook metrics and `status` (docs/design.md, "Hook runs of
one-shot commands").

Where: the state dir of the daemon the one-shot's settings describe (``service_state_dir``: the settings
without the command line's ``--state-dir``), so root's `pki install-bundle --state-dir <root's dir>` still
reaches the daemon. Written only inside a descriptor of that directory, opened without following a
final link, as a new temp file (O_EXCL, 0600 from the first byte, given to the directory's owner) renamed
over the name: root never writes through a link the service user placed there, never opens an existing
file there, and never reads one. The record holds this run's results only: labels, outcome, times, exit
code and the tail of the hook's output, already shown by the command itself.

Read by the daemon like its other records: the directory and the file must be this user's and not
writable by group or others (root's record is chowned to the directory's owner), bounded in size and
nesting, every field type-checked; anything else is refused with a reason (a finding), never a crash.
The daemon keeps its own record in the same format (``hook-results-daemon.json``: each hook's newest known
run), so a restart does not show or count an older one-shot run again (daemon/state_news.py).
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from sslreconciler.fsio import atomic_write_at, opened_dir, owner_for_new_files, read_at, written_by_others
from sslreconciler.model import boundedjson
from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.model.times import parse_utc
from sslreconciler.reconcile.report import HookResult

HOOK_RECORD = "hook-results.json"
DAEMON_HOOK_RECORD = "hook-results-daemon.json"  # the daemon's own: each hook's newest known run, across restarts
HOOK_RECORD_LIMIT = 256 * 1024  # far above what 100 hooks' results take (400 characters of output each)
MAX_RESULTS = 256
MAX_DEPTH = 4  # {"results": [{"changed": [...]}]}
_OUTCOMES = ("ok", "failed", "timeout", "error")
_TEXT_LIMIT = 4096
_NO_LINK_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class BadHookRecord(SslReconcilerError, ValueError):
    """The record is not one this program writes, or not trusted: the reason, without its content."""


def write_hook_record(state_dir: Path, command: str, results: list[HookResult], name: str = HOOK_RECORD) -> str | None:
    """Leave ``results`` for the daemon in ``state_dir``; None, or why it could not (for a note). A state
    dir that does not exist has no daemon to tell: nothing is written, no note."""
    if not results:
        return None
    doc = {"version": 1, "command": command, "results": [r.to_dict() for r in results[:MAX_RESULTS]]}
    data = json.dumps(doc).encode()
    try:
        fd = os.open(state_dir, _NO_LINK_DIR)  # a link in the directory's place fails (ELOOP)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        why = exc.strerror
        if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(state_dir):
            why = "is a symbolic link, and no record is written through a link (name the real directory as state_dir)"
        return f"the daemon's state dir {state_dir}: {why}; the running daemon does not see these hook runs"
    try:
        atomic_write_at(fd, name, data, 0o600, *owner_for_new_files(fd))
    except OSError as exc:
        what = "is a directory (remove it)" if exc.errno == errno.EISDIR else f"cannot be written: {exc.strerror}"
        return f"the daemon's hook record {state_dir / name} {what}; the running daemon does not see these hook runs"
    finally:
        os.close(fd)
    return None


def read_hook_record(state_dir: Path, name: str = HOOK_RECORD) -> list[HookResult]:
    """The results a one-shot left, [] when there is no record; BadHookRecord when it cannot be believed."""
    display = str(state_dir / name)
    try:
        with opened_dir(state_dir) as fd:
            problem = written_by_others(os.fstat(fd), f"state dir {state_dir}")
            if problem:
                raise BadHookRecord(f"{problem}; its hook record is ignored")
            data, st = read_at(fd, name, display, None, HOOK_RECORD_LIMIT)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise BadHookRecord(f"state dir {state_dir} cannot be opened: {exc.strerror}") from None
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            return []
        raise BadHookRecord(exc.finding.reason) from None
    problem = written_by_others(st, display)
    if problem:
        raise BadHookRecord(f"{problem}; it is ignored")
    return parse_hook_record(data)


def parse_hook_record(data: bytes) -> list[HookResult]:
    try:
        raw = boundedjson.loads(data, MAX_DEPTH)
    except ValueError as exc:
        raise BadHookRecord("is not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("results"), list):
        raise BadHookRecord("is not a hook record (an object with a list of results)")
    if len(raw["results"]) > MAX_RESULTS:
        raise BadHookRecord(f"holds more than {MAX_RESULTS} results")
    return [_result(item) for item in raw["results"]]


def _text(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or len(value) > _TEXT_LIMIT:
        raise BadHookRecord(f"a result's field {key} is not a string (of at most {_TEXT_LIMIT} characters)")
    return value


def _result(item: Any) -> HookResult:
    if not isinstance(item, dict):
        raise BadHookRecord("a result is not an object")
    outcome = _text(item, "outcome")
    if outcome not in _OUTCOMES:
        raise BadHookRecord(f"a result's outcome is not one of {', '.join(_OUTCOMES)}")
    started = _text(item, "started_at")
    if parse_utc(started) is None:
        raise BadHookRecord("a result's started_at is not a time (ISO 8601)")
    duration, code, changed = item.get("duration_s"), item.get("exit_code"), item.get("changed", [])
    if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 <= duration <= 1e6:
        raise BadHookRecord("a result's duration_s is not a number of seconds")
    if code is not None and (type(code) is not int or not -1000 <= code <= 1000):
        raise BadHookRecord("a result's exit_code is not an exit code")
    if not isinstance(changed, list) or not all(isinstance(c, str) and len(c) <= _TEXT_LIMIT for c in changed):
        raise BadHookRecord("a result's changed is not a list of file names")
    return HookResult(
        _text(item, "hook"),
        outcome,  # type: ignore[arg-type]  # checked against _OUTCOMES above
        started,
        float(duration),
        code,
        _text(item, "detail"),
        tuple(changed),
    )
