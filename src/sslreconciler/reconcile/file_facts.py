"""What a trust file says, as plain data: computed once from its bytes, kept in the stat index. Pure: no I/O.

``analyze`` is the one seam from a trust file's bytes to everything the trust rules ask of it: per
certificate its DER, the DER of its subject and issuer names (the anchor lookup's key), CA shape,
self-signature, OpenSSL subject hash, report entry, validity bounds, and the findings that do not
depend on the time (key and signature policy, why it cannot be an anchor). ``load_trust`` maps it over
the files it has to read, in one place (``analyze_all``), so the map can be made parallel without
touching the rules. The values serialize to JSON (``to_json``/``from_json``) for the state-dir record:
a one-shot no-op whose trust files did not change (reconcile/stat_index.py) hands these back instead
of reading, parsing and judging each file again. Findings that depend on the time (validity, expiry)
are judged from the recorded bounds at ``now`` (``validity_at``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from sslreconciler.model.findings import Finding, FindingCode, Level, SourceError
from sslreconciler.pki import trust as rules
from sslreconciler.pki import verify
from sslreconciler.pki.sources import parse_certificates
from sslreconciler.pki.subject_hash import subject_hash
from sslreconciler.reconcile.mapping import Mapper, serial_map
from sslreconciler.reconcile.report import CertInfo
from sslreconciler.stores.entries import cert_der


@dataclass(frozen=True, slots=True)
class CertFact:
    """One certificate of a trust file, as the trust rules read it."""

    der: bytes
    subject: bytes  # DER of the subject name: the anchors' index key
    issuer: bytes  # DER of the issuer name
    is_ca: bool  # verify.is_ca
    self_signed: bool  # verify.is_self_signed (checked only for a self-issued certificate)
    subject_hash: str  # OpenSSL's, for the hash links
    info: CertInfo  # the report's entry
    not_before: float  # POSIX seconds
    not_after: float
    key_findings: tuple[Finding, ...]  # rules.key_findings under the policy analyzed with
    anchor_problem: str  # rules.anchor_problem, "" for none
    signature_findings: tuple[Finding, ...]  # rules.signature_findings under that policy

    @property
    def describe(self) -> str:
        """``verify.describe`` of the certificate."""
        return self.info.subject or "(empty subject)"

    def parse(self) -> x509.Certificate:
        """The certificate object, for the few rules that need one (a chain check, a signature)."""
        return x509.load_der_x509_certificate(self.der)

    def validity_at(self, display: str, now: dt.datetime, warn_days: int) -> list[Finding]:
        """``verify.validity_findings`` from the recorded bounds."""
        stamp = now.timestamp()
        if self.not_before <= stamp and self.not_after - stamp >= warn_days * 86400 + 1:
            return []  # inside its validity, not expiring: the common case, without making datetimes
        return verify.validity_bounds_findings(
            dt.datetime.fromtimestamp(self.not_before, dt.UTC),
            dt.datetime.fromtimestamp(self.not_after, dt.UTC),
            display,
            now,
            warn_days,
        )


@dataclass(frozen=True, slots=True)
class FileFacts:
    """One trust file: its certificates' facts, or the finding that says why it has none."""

    display: str
    policy: tuple[str, ...]  # the lowered policy rules the findings were judged under
    is_der: bool = False
    certs: tuple[CertFact, ...] = ()
    problem: Finding | None = None  # no certificate could be parsed from it


AnalyzeItem = tuple[str, bytes, tuple[str, ...]]  # (display, bytes, lowered policy rules, sorted)


def policy_key(lowered: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(lowered))


def _cert_fact(cert: x509.Certificate, display: str, lowered: frozenset[str]) -> CertFact:
    self_signed = cert.issuer == cert.subject and verify.is_self_signed(cert)
    return CertFact(
        der=cert_der(cert),
        subject=cert.subject.public_bytes(),
        issuer=cert.issuer.public_bytes(),
        is_ca=verify.is_ca(cert),
        self_signed=self_signed,
        subject_hash=subject_hash(cert),
        info=CertInfo.of(cert),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        key_findings=tuple(rules.key_findings(cert, display, lowered)),
        anchor_problem=rules.anchor_problem(cert) or "",
        signature_findings=tuple(rules.signature_findings(cert, display, lowered)),
    )


def analyze(item: AnalyzeItem) -> FileFacts:
    """Everything the trust rules ask of one trust file, from its bytes. Module level and pure (picklable
    in and out), so it can be mapped over processes."""
    display, data, policy = item
    try:
        certs = parse_certificates(data, display)
    except SourceError as exc:
        return FileFacts(display, policy, problem=exc.finding)
    lowered = frozenset(policy)
    return FileFacts(display, policy, b"-----BEGIN " not in data, tuple(_cert_fact(c, display, lowered) for c in certs))


def analyze_all(items: list[AnalyzeItem], map_: Mapper = serial_map) -> list[FileFacts]:
    """The one place trust files are analyzed: in order, one result per item; on worker processes where
    ``map_`` may use them (reconcile/parallel.py: a one-shot with many files), else here."""
    return map_(analyze, items, via="processes")


# --- the record's JSON form (a contract between versions: reconcile/record.py) ---------------------------


def _finding_json(f: Finding) -> list[str]:
    return [f.level.value, f.code.value, f.reason]


def _finding(display: str, raw: list[str]) -> Finding:
    return Finding(Level(raw[0]), display, _text(raw[2]), FindingCode(raw[1]))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise TypeError("not base64 text")
    return binascii.a2b_base64(text, strict_mode=True)  # binascii.Error is a ValueError


SUBJECT_HASH = re.compile(r"[0-9a-f]{8}")  # OpenSSL's: it names the hash link root makes
_TIME_RANGE = (-62135596800.0, 253402300799.0)  # 0001-01-01 .. 9999-12-31T23:59:59 UTC: what datetime holds
_MAX_TEXT = 64 * 1024  # longer recorded text (a name, a reason) is not believed: that file is read in full


def _der_sequence(der: bytes) -> bytes:
    """``der`` when it is one DER SEQUENCE whose length header matches its size; else ValueError."""
    if len(der) < 2 or der[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    first = der[1]
    if first < 0x80:
        header, length = 2, first
    else:
        count = first & 0x7F
        if not 1 <= count <= 4 or len(der) < 2 + count or der[2] == 0:
            raise ValueError("bad DER length")
        header, length = 2 + count, int.from_bytes(der[2 : 2 + count], "big")
        if length < 0x80:
            raise ValueError("DER length not minimal")
    if header + length != len(der):
        raise ValueError("DER length does not match its size")
    return der


def _seconds(value: object) -> float:
    if type(value) not in (int, float):
        raise TypeError("not a number")
    stamp = float(value)  # type: ignore[arg-type]
    if not math.isfinite(stamp) or not _TIME_RANGE[0] <= stamp <= _TIME_RANGE[1]:
        raise ValueError("time out of range")
    return stamp


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError("not text, or too long")
    return value


def _cert_from_json(display: str, c: list[object]) -> CertFact:
    """One recorded certificate, checked: the hash a link is named by, DER that is one SEQUENCE whose
    SHA-256 is the recorded fingerprint, times a datetime can hold. ValueError/TypeError when not."""
    der, subject, issuer, is_ca, self_signed, shash, info, start, end, keys, anchor, sigs = c
    entry = CertInfo(*map(_text, info))  # type: ignore[call-overload]
    der_bytes = _der_sequence(_unb64(der))
    if hashlib.sha256(der_bytes).hexdigest() != entry.fingerprint_sha256:
        raise ValueError("DER does not match its fingerprint")
    if not isinstance(shash, str) or not SUBJECT_HASH.fullmatch(shash):
        raise ValueError("not a subject hash")
    if not isinstance(keys, list) or not isinstance(sigs, list):
        raise TypeError("findings are not lists")
    return CertFact(
        der=der_bytes,
        subject=_unb64(subject),
        issuer=_unb64(issuer),
        is_ca=bool(is_ca),
        self_signed=bool(self_signed),
        subject_hash=shash,
        info=entry,
        not_before=_seconds(start),
        not_after=_seconds(end),
        key_findings=tuple(_finding(display, k) for k in keys),
        anchor_problem=_text(anchor),
        signature_findings=tuple(_finding(display, s) for s in sigs),
    )


def to_json(f: FileFacts) -> list[object]:
    """``[policy, is_der, [certificate...]]``; a file with a problem is never recorded."""
    certs = [
        [
            _b64(c.der),
            _b64(c.subject),
            _b64(c.issuer),
            c.is_ca,
            c.self_signed,
            c.subject_hash,
            list(c.info.to_dict().values()),
            c.not_before,
            c.not_after,
            [_finding_json(k) for k in c.key_findings],
            c.anchor_problem,
            [_finding_json(s) for s in c.signature_findings],
        ]
        for c in f.certs
    ]
    return [list(f.policy), f.is_der, certs]


def from_json(display: str, raw: list[object]) -> FileFacts:
    """The inverse of ``to_json``; ValueError/TypeError/IndexError/KeyError when malformed."""
    policy, is_der, certs = raw
    if not isinstance(policy, list) or not isinstance(certs, list) or not certs:
        raise ValueError("malformed file facts")
    facts = [_cert_from_json(display, c) for c in certs]
    return FileFacts(display, tuple(_text(p) for p in policy), bool(is_der), tuple(facts))
