"""``pki renew``: re-issue, under the current cluster CA, the staged host certificates that expire soon.

Decide (pure: which staged certificates are due) then execute (issue each again, same name, same
subjectAltName, same key type, same lifetime unless told). Everything not due is left byte-for-byte alone.
Web pairs (``HOST-web.*``) are renewed only with ``web_too``: a site may have replaced a node's web
certificate with one from a public CA, and a renewal should never undo that behind the admin's back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sslreconciler.cluster.staging import StagedCA, find_ca, read_cert, read_key
from sslreconciler.cluster.stagingroot import staged_dir
from sslreconciler.fsio import replace_together_at
from sslreconciler.model.errors import CommandError
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, issue_host_cert, key_pem


@dataclass(frozen=True, slots=True)
class Staged:
    stem: str  # file stem: HOST or HOST-web
    host: str
    web: bool
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class Renewed:
    host: str
    web: bool
    file: str
    serial: str
    not_after: dt.datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "web": self.web,
            "file": self.file,
            "serial": self.serial,
            "not_after": self.not_after.isoformat().replace("+00:00", "Z"),
        }


def due(staged: list[Staged], now: dt.datetime, within_days: int, web_too: bool) -> list[Staged]:
    """The staged certificates that expire within the window (web pairs only with ``web_too``). Pure."""
    limit = now + dt.timedelta(days=within_days)
    return [s for s in staged if s.not_after <= limit and (web_too or not s.web)]


def _staged(staging: Path, ca: StagedCA) -> list[Staged]:
    out = []
    for crt in sorted(staging.glob("*.crt")):
        if crt.stem == ca.name or not crt.with_suffix(".key").exists():
            continue
        cert = read_cert(crt)
        if cert.issuer == cert.subject:
            continue  # a self-signed file is a CA (an old or retired one), never a host to renew
        web = crt.stem.endswith("-web")
        out.append(Staged(crt.stem, crt.stem.removesuffix("-web"), web, cert.not_valid_after_utc))
    return out


def _key_type(key: object) -> KeyType:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec-p256"
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 4096:
        return "rsa4096"
    return "rsa2048"


def _reissue(staging: Path, ca: StagedCA, item: Staged, days: int | None, now: dt.datetime) -> Renewed:
    crt_path, key_path = staging / f"{item.stem}.crt", staging / f"{item.stem}.key"
    old = read_cert(crt_path)
    try:
        sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    lifetime = days or max(1, round((old.not_valid_after_utc - old.not_valid_before_utc).total_seconds() / 86400))
    key = generate_key(_key_type(read_key(key_path)))
    cert = issue_host_cert(ca.key, ca.cert, item.host, key, lifetime, sans, now)
    # Both temp files are written before either is renamed in: a write error leaves the old pair whole.
    with staged_dir(staging) as dir_fd:
        replace_together_at(dir_fd, [(key_path.name, key_pem(key), 0o600), (crt_path.name, cert_pem(cert), 0o644)])
    return Renewed(item.host, item.web, crt_path.name, f"{cert.serial_number:x}", cert.not_valid_after_utc)


def renew(staging: Path, within_days: int, web_too: bool, days: int | None = None) -> list[Renewed]:
    """Re-issue every due certificate; what was renewed (empty when nothing was due)."""
    if within_days < 0:
        raise CommandError(f"--within {within_days}: must be 0 or more days")
    if days is not None and days < 1:
        raise CommandError(f"--days {days}: must be 1 or more")
    ca = find_ca(staging)
    now = dt.datetime.now(dt.UTC)
    return [_reissue(staging, ca, item, days, now) for item in due(_staged(staging, ca), now, within_days, web_too)]


def render(renewed: list[Renewed], within_days: int) -> str:
    if not renewed:
        return f"nothing expires within {within_days} days; nothing renewed"
    return "\n".join(
        f"{r.host}: renewed {'web' if r.web else 'ssl'} ({r.file}), serial {r.serial}, until {r.not_after:%Y-%m-%d}"
        for r in renewed
    )
