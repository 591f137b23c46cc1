"""The state dir's ACME files: the account key (0600, made on first use) and the result record.

The record (``acme.json``) is what `acme renew` remembers between runs (which certificate it
installed, from which directory, failures for back-off) and what the daemon's /health and /metrics
show. Reads are bounded; a missing or unreadable record is an empty one, never a crash.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sslreconciler.fsio import atomic_write, read_source
from sslreconciler.model.findings import FindingCode, SourceError, error

RECORD = "acme.json"
ACCOUNT_KEY = "acme-account.key"
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


def iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def read_record(state_dir: Path) -> AcmeRecord:
    path = state_dir / RECORD
    try:
        data, _ = read_source(path, str(path), [state_dir], limit=RECORD_LIMIT)
        raw = json.loads(data)
    except (SourceError, ValueError):
        return AcmeRecord()
    if not isinstance(raw, dict):
        return AcmeRecord()
    known = AcmeRecord.__dataclass_fields__
    record = AcmeRecord()
    for key, value in raw.items():
        if key in known:
            with contextlib.suppress(TypeError, ValueError):
                setattr(record, key, value)
    if not isinstance(record.failures, int):
        record.failures = 0
    return record


def write_record(state_dir: Path, record: AcmeRecord) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(state_dir / RECORD, record.to_json(), 0o600)


def account_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The ACME account key: read from the state dir, or made (EC P-256, 0600 from the first byte)."""
    path = state_dir / ACCOUNT_KEY
    try:
        data, _ = read_source(path, str(path), [state_dir], limit=RECORD_LIMIT)
    except SourceError as exc:
        if exc.finding.code != FindingCode.MISSING:
            raise
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, pem, 0o600)
        return key
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise _bad_key(path, "is not an unencrypted PEM private key") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
        raise _bad_key(path, "is not an EC P-256 key (the ACME account key this program makes)")
    return loaded


def _bad_key(path: Path, reason: str) -> SourceError:
    return SourceError(error(str(path), reason, FindingCode.ACME_ACCOUNT_KEY))


def health_view(state_dir: Path, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """The record as /health shows it, with ``overdue``; None when ACME was never run here."""
    from sslreconciler.cluster.acme.decide import is_overdue

    record = read_record(state_dir)
    if record.last_attempt is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    due = parse_time(record.renewal_due)
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
        "overdue": is_overdue(due, now),
    }
