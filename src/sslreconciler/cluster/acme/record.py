"""The state dir's ACME files `acme renew` writes: the account key (0600, made on first use) and the
result record (its shape and reading: reconcile/acme_state.py, shared with the daemon). Files root
makes here belong to the directory's owner.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sslreconciler.fsio import atomic_write, opened_dir, owner_for_new_files, read_source
from sslreconciler.model.findings import FindingCode, SourceError, error
from sslreconciler.reconcile.acme_state import RECORD, RECORD_LIMIT, AcmeRecord

ACCOUNT_KEY = "acme-account.key"


def _owner(state_dir: Path) -> tuple[int | None, int | None]:
    """Who files root makes in the state dir belong to: its owner (the service user's timer must be able
    to read the account key and the record after a root run)."""
    with opened_dir(state_dir) as dir_fd:
        return owner_for_new_files(dir_fd)


def ran_well(record: AcmeRecord, result: str, when: str) -> None:
    """A run that ended well (``issued`` or ``nothing-to-do``): the failures before it are over, so the
    count, the last error and the configuration they were for are cleared (the daemon then shows none)."""
    record.last_result, record.last_success, record.last_error = result, when, None
    record.failures, record.last_failure, record.failed_config_key = 0, None, None


def write_record(state_dir: Path, record: AcmeRecord) -> None:
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(state_dir / RECORD, record.to_json(), 0o600, *_owner(state_dir))


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
        atomic_write(path, pem, 0o600, *_owner(state_dir))
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
