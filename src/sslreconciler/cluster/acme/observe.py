"""`acme renew` and `acme status` observe: the acme block, the names wanted, the web certificate in place
(the desired state's web pair) and the state dir's record of earlier runs. Reads only."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from sslreconciler.cluster.layout import web_pair
from sslreconciler.config.desired import Acme, DesiredState
from sslreconciler.fsio import read_source
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import SourceError
from sslreconciler.model.times import parse_utc
from sslreconciler.pki.sources import parse_certificates
from sslreconciler.reconcile.acme_decide import CertFacts, Memory, Wanted
from sslreconciler.reconcile.acme_state import RECORD, AcmeRecord, load_record


@dataclass(frozen=True, slots=True)
class Observed:
    acme: Acme
    names: list[str]
    wanted: Wanted
    cert: CertFacts | None
    cert_pem: bytes | None
    record: AcmeRecord
    record_note: str | None = None  # why the state dir's record was not usable (then it is ignored)


def _acme_block(desired: DesiredState, desired_file: Path) -> Acme:
    if desired.acme is None:
        raise ConfigError(desired_file, "no acme block: nothing to renew (see docs/acme.md)", "acme")
    return desired.acme


def _config_key(acme: Acme, names: list[str]) -> str:
    relevant = {
        "directory": acme.directory,
        "names": sorted(names),
        "challenge": acme.challenge.model_dump(mode="json"),
        "key_type": acme.key_type,
        "ca_bundle": str(acme.ca_bundle),
        "eab": acme.eab.kid if acme.eab else None,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def cert_facts(cert: x509.Certificate) -> CertFacts:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = frozenset(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = frozenset()
    return CertFacts(
        cert.fingerprint(hashes.SHA256()).hex(), names, cert.not_valid_before_utc, cert.not_valid_after_utc
    )


def _web_certificate(ssl_dir: Path, desired: DesiredState) -> tuple[CertFacts | None, bytes | None]:
    """The web pair's leaf certificate; None when the pair is missing or unreadable (it will be replaced)."""
    web = web_pair(desired)
    if not (ssl_dir / web.key).exists():
        return None, None
    try:
        data, _ = read_source(ssl_dir / web.crt, web.crt, [ssl_dir])
        leaf = parse_certificates(data, web.crt)[0]
    except (SourceError, IndexError):
        return None, None
    return cert_facts(leaf), leaf.public_bytes(serialization.Encoding.PEM)


def observe(desired: DesiredState, desired_file: Path, ssl_dir: Path, state_dir: Path) -> Observed:
    acme = _acme_block(desired, desired_file)
    names = [n.lower() for n in (acme.names or [desired.hostname or socket.getfqdn()])]
    renew_before = dt.timedelta(days=acme.renew_before_days) if acme.renew_before_days is not None else None
    wanted = Wanted(acme.directory, frozenset(names), renew_before, acme.drop_in, _config_key(acme, names))
    cert, pem = _web_certificate(ssl_dir, desired)
    record, problem = load_record(state_dir)
    note = f"note: {state_dir / RECORD}: {problem}; ignored (a new one is written)" if problem else None
    return Observed(acme, names, wanted, cert, pem, record, note)


def notes(obs: Observed) -> list[str]:
    return [obs.record_note] if obs.record_note else []


def memory(record: AcmeRecord) -> Memory:
    return Memory(
        record.issued_fingerprint,
        record.directory if record.issued_fingerprint else None,
        record.failures,
        parse_utc(record.last_failure),
        record.failed_config_key,
    )
