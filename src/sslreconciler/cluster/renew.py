"""``pki renew``: re-issue, under the current cluster CA, the staged host certificates that expire soon.

Decide (pure: which staged certificates are due, and the lifetime each gets) then execute (issue each again,
same name, same subjectAltName, same key type, same lifetime unless told). Everything not due is left
byte-for-byte alone. A renewal never leaves a certificate due again at once: a lifetime not longer than the
window is replaced by the default host lifetime (and the output says so), a ``--days`` not longer than the
window is refused, and so is a renewal the CA's own expiry would cut back inside the window.
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
from sslreconciler.model.errors import CommandError, UsageError
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, issue_host_cert, key_pem
from sslreconciler.pki.lifetimes import HOST_DAYS


@dataclass(frozen=True, slots=True)
class Staged:
    stem: str  # file stem: HOST or HOST-web
    host: str
    web: bool
    not_after: dt.datetime
    lifetime: int = HOST_DAYS  # days, not_before to not_after, rounded


@dataclass(frozen=True, slots=True)
class Lifetime:
    """The lifetime a due certificate is renewed with, and why: ``kept``, ``--days`` or ``default``."""

    days: int
    source: str
    was: int


@dataclass(frozen=True, slots=True)
class Renewed:
    host: str
    web: bool
    file: str
    serial: str
    not_after: dt.datetime
    lifetime: Lifetime

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "web": self.web,
            "file": self.file,
            "serial": self.serial,
            "not_after": self.not_after.isoformat().replace("+00:00", "Z"),
            "days": self.lifetime.days,
            "days_from": self.lifetime.source,
            "previous_days": self.lifetime.was,
        }


def due(staged: list[Staged], now: dt.datetime, within_days: int, web_too: bool) -> list[Staged]:
    """The staged certificates that expire within the window (web pairs only with ``web_too``). Pure."""
    limit = now + dt.timedelta(days=within_days)
    return [s for s in staged if s.not_after <= limit and (web_too or not s.web)]


def lifetime(item: Staged, within_days: int, days: int | None) -> Lifetime:
    """The lifetime a due certificate gets: ``--days``, else its own when longer than the window, else the
    default host lifetime (its own would make it due again at once). Pure; ``check`` refuses what is still
    not longer than the window."""
    if days is not None:
        return Lifetime(days, "--days", item.lifetime)
    if item.lifetime > within_days:
        return Lifetime(item.lifetime, "kept", item.lifetime)
    return Lifetime(HOST_DAYS, "default", item.lifetime)


def check_arguments(within_days: int, days: int | None) -> None:
    """Refuse, whatever is due, a bad --within or a --days not longer than the window: a UsageError (exit 2,
    as argparse's own refusals). Pure."""
    if within_days < 0:
        raise UsageError(f"--within {within_days}: must be 0 or more days")
    if days is not None and days < 1:
        raise UsageError(f"--days {days}: must be 1 or more")
    if days is not None and days <= within_days:
        raise UsageError(
            f"--days {days}: not longer than the --within {within_days} window, so every renewed "
            "certificate would be due again at once; nothing renewed. Give --days longer than the window, "
            "or leave it out (each keeps its lifetime, or gets the default when that is not longer than "
            "the window)."
        )


def check(chosen: Lifetime, within_days: int, ca_name: str, ca_not_after: dt.datetime, now: dt.datetime) -> None:
    """Refuse a renewal that would leave the certificate due again at once. Pure."""
    if chosen.days <= within_days:
        if chosen.source == "--days":
            check_arguments(within_days, chosen.days)
        raise CommandError(
            f"--within {within_days}: not shorter than the default host lifetime ({HOST_DAYS} days), so a renewed "
            "certificate would be due again at once; nothing renewed. Give --days longer than the window."
        )
    if ca_not_after <= now + dt.timedelta(days=within_days):
        raise CommandError(
            f"{ca_name}.crt: the cluster CA expires on {ca_not_after:%Y-%m-%d}, within the --within "
            f"{within_days} window, and no certificate it signs outlives it, so a renewed certificate would be "
            "due again at once; nothing renewed. Rotate the CA first (`pki rotate-ca`, docs/pki.md)."
        )


def _staged(staging: Path, ca: StagedCA) -> list[Staged]:
    out = []
    for crt in sorted(staging.glob("*.crt")):
        if crt.stem == ca.name or not crt.with_suffix(".key").exists():
            continue
        cert = read_cert(crt)
        if cert.issuer == cert.subject:
            continue  # a self-signed file is a CA (an old or retired one), never a host to renew
        web = crt.stem.endswith("-web")
        span = round((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400)
        out.append(Staged(crt.stem, crt.stem.removesuffix("-web"), web, cert.not_valid_after_utc, max(1, span)))
    return out


def _key_type(key: object) -> KeyType:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec-p256"
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 4096:
        return "rsa4096"
    return "rsa2048"


def _reissue(staging: Path, ca: StagedCA, item: Staged, chosen: Lifetime, now: dt.datetime) -> Renewed:
    crt_path, key_path = staging / f"{item.stem}.crt", staging / f"{item.stem}.key"
    old = read_cert(crt_path)
    try:
        sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    key = generate_key(_key_type(read_key(key_path)))
    cert = issue_host_cert(ca.key, ca.cert, item.host, key, chosen.days, sans, now)
    # Both temp files are written before either is renamed in: a write error leaves the old pair whole.
    with staged_dir(staging) as dir_fd:
        replace_together_at(dir_fd, [(key_path.name, key_pem(key), 0o600), (crt_path.name, cert_pem(cert), 0o644)])
    return Renewed(item.host, item.web, crt_path.name, f"{cert.serial_number:x}", cert.not_valid_after_utc, chosen)


def renew(staging: Path, within_days: int, web_too: bool, days: int | None = None) -> list[Renewed]:
    """Re-issue every due certificate; what was renewed (empty when nothing was due)."""
    check_arguments(within_days, days)
    ca = find_ca(staging)
    now = dt.datetime.now(dt.UTC)
    todo = [(item, lifetime(item, within_days, days)) for item in due(_staged(staging, ca), now, within_days, web_too)]
    for _item, chosen in todo:  # every refusal before the first write
        check(chosen, within_days, ca.name, ca.cert.not_valid_after_utc, now)
    return [_reissue(staging, ca, item, chosen, now) for item, chosen in todo]


def render(renewed: list[Renewed], within_days: int) -> str:
    if not renewed:
        return f"nothing expires within {within_days} days; nothing renewed"
    return "\n".join(
        f"{r.host}: renewed {'web' if r.web else 'ssl'} ({r.file}), serial {r.serial}, until {r.not_after:%Y-%m-%d}"
        + _why(r.lifetime, within_days)
        for r in renewed
    )


def _why(chosen: Lifetime, within_days: int) -> str:
    if chosen.source != "default":
        return ""
    return (
        f"; {chosen.days} days, the default host lifetime: its own {chosen.was} days are not longer than the "
        f"{within_days}-day window and would have made it due again at once"
    )
