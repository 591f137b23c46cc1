"""The state dir's ACME record (``acme.json``), read: what `acme renew` remembers between runs (which
certificate it installed, from which directory, failures for back-off) and what the daemon's /health
and /metrics show. In the core so the daemon reads it without importing the cluster commands (which
write it: cluster/acme/record.py). Reads are bounded (size, nesting) and every field is type-checked:
the state dir is the service user's, so the record is treated as hostile input; a missing or unusable
record is an empty one, never a crash.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sslreconciler.fsio import read_source
from sslreconciler.model import boundedjson
from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.findings import FindingCode, SourceError, warning
from sslreconciler.model.times import parse_utc
from sslreconciler.reconcile.acme_decide import is_overdue, iso

RECORD = "acme.json"
RECORD_LIMIT = 64 * 1024


@dataclass
class AcmeRecord:
    directory: str | None = None
    names: list[str] = field(default_factory=list)
    issued_fingerprint: str | None = None  # sha256 hex of the certificate this client installed
    issued_at: str | None = None
    not_after: str | None = None  # of the web certificate seen at the last run
    renewal_due: str | None = None  # its renewal point
    last_attempt: str | None = None
    last_result: str | None = None  # issued | nothing-to-do | failed
    last_success: str | None = None  # the last run that ended well (issued or nothing to do)
    last_message: str | None = None
    last_error: dict[str, str] | None = None  # {"type": ..., "detail": ...} in the ACME server's words
    failures: int = 0
    last_failure: str | None = None
    failed_config_key: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"


_TIMES = ("issued_at", "not_after", "renewal_due", "last_attempt", "last_success", "last_failure")
_PAST = ("issued_at", "last_attempt", "last_success", "last_failure")  # moments of runs: never ahead of now
CLOCK_SKEW = dt.timedelta(hours=1)  # a clock set back this much still finds its record usable
_TEXTS = ("directory", "issued_fingerprint", "last_result", "last_message", "failed_config_key")
MAX_DEPTH = 4  # the record's own shape is 2 deep
MAX_TEXT = 4096


class BadRecord(SslReconcilerError, ValueError):
    """The record is not what this program writes: the reason, without its content."""


def _text(raw: dict[str, Any], key: str, now: dt.datetime) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRecord(f"field {key} is not a string (of at most {MAX_TEXT} characters)")
    when = parse_utc(value) if key in _TIMES else None
    if key in _TIMES and when is None:
        raise BadRecord(f"field {key} is not a time (ISO 8601)")
    if key in _PAST and when is not None and when > now + CLOCK_SKEW:
        # a run that has not happened yet: it would hold back renewals until then (or overflow a date)
        raise BadRecord(f"field {key} is a time in the future ({iso(when)}, now {iso(now)})")
    return value


def _parse(data: bytes, now: dt.datetime) -> AcmeRecord:
    try:
        raw = boundedjson.loads(data, MAX_DEPTH)
    except ValueError as exc:
        raise BadRecord(f"is not JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)) from None
    if not isinstance(raw, dict):
        raise BadRecord("is not a JSON object")
    record = AcmeRecord()
    for key in (*_TIMES, *_TEXTS):
        setattr(record, key, _text(raw, key, now))
    names = raw.get("names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and len(n) <= 255 for n in names):
        raise BadRecord("field names is not a list of names")
    record.names = names
    failures = raw.get("failures", 0)
    if type(failures) is not int or not 0 <= failures <= 1_000_000:
        raise BadRecord("field failures is not a count")
    record.failures = failures
    error = raw.get("last_error")
    if error is not None and not (
        isinstance(error, dict) and all(isinstance(v, str) and len(v) <= MAX_TEXT for v in error.values())
    ):
        raise BadRecord("field last_error is not an object of strings")
    record.last_error = error
    return record


def load_record(state_dir: Path, now: dt.datetime | None = None) -> tuple[AcmeRecord, str | None]:
    """The record, and why it was not usable (then an empty record); a missing record is no problem."""
    path = state_dir / RECORD
    try:
        data, _ = read_source(path, str(path), [state_dir], limit=RECORD_LIMIT)
        return _parse(data, now or dt.datetime.now(dt.UTC)), None
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            return AcmeRecord(), None
        return AcmeRecord(), exc.finding.reason
    except BadRecord as exc:
        return AcmeRecord(), str(exc)


def health_view(state_dir: Path, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The record as /health shows it, with ``overdue``; None when ACME was never run here. A record
    that is not usable is ``{"problem": <finding>}``: it costs the ACME part of the document only.
    Never raises (the daemon publishes its health through this)."""
    try:
        return _view(state_dir, now or dt.datetime.now(dt.UTC))
    except Exception as exc:  # a bug here must not freeze /health
        return _problem(state_dir, f"cannot be shown ({type(exc).__name__})")


def _problem(state_dir: Path, reason: str) -> dict[str, Any]:
    finding = warning(
        str(state_dir / RECORD), f"the ACME record {reason}; the ACME part of the health left out", FindingCode.ACME
    )
    return {"problem": finding.to_dict()}


def _view(state_dir: Path, now: dt.datetime) -> dict[str, Any] | None:
    record, problem = load_record(state_dir, now)
    if problem is not None:
        return _problem(state_dir, problem)
    if record.last_attempt is None:
        return None
    return {
        "directory": record.directory,
        "names": record.names,
        "renewal_due": record.renewal_due,
        "not_after": record.not_after,
        "last_attempt": record.last_attempt,
        "last_result": record.last_result,
        "last_success": record.last_success,
        "last_error": record.last_error,
        "failures": record.failures,
        "overdue": is_overdue(parse_utc(record.renewal_due), now),
    }
