"""The web-certificate workflow: a CSR for an outside CA, installing what it signs, rolling back.

``web csr`` keeps the new key beside the live one as ``ssl-web.key.pending`` (0600). ``web install``
checks the signed certificate against that key (or a given one), verifies it when its issuer is at hand
(in ``authorities/`` or the chain given) and otherwise installs it unverified, as sipXecs does; the
current pair is kept as ``ssl-web.{key,crt}.previous`` so ``web rollback`` can put it back.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from sslreconciler.errors import CommandError, UsageError
from sslreconciler.findings import SourceError
from sslreconciler.fsio import atomic_write, read_source
from sslreconciler.inputs import is_trust_file_name
from sslreconciler.pki import verify
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, key_pem, parse_san
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key

PENDING_KEY = "ssl-web.key.pending"
PREVIOUS_KEY, PREVIOUS_CRT = "ssl-web.key.previous", "ssl-web.crt.previous"
PREVIOUS_WAS_FALLBACK = "ssl-web.previous-was-ssl-pair"
KEY, CRT = "ssl-web.key", "ssl-web.crt"

_ATTRS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "E": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
}


def parse_subject(subject: str) -> x509.Name:
    """``/CN=host/O=org`` (openssl -subj) or ``CN=host,O=org`` (RFC 4514)."""
    text = subject.strip()
    if text.startswith("/"):
        parts = [p for p in text.split("/") if p]
        attrs = [_attribute(p, subject) for p in parts]
    else:
        try:
            parsed = x509.Name.from_rfc4514_string(text)
        except ValueError as exc:
            raise UsageError(
                f"--subject {subject!r}: {exc or 'not a distinguished name'} (use e.g. /CN=host/O=org)"
            ) from None
        if list(parsed):
            return parsed
        attrs = []
    if not attrs:
        raise UsageError(f"--subject {subject!r}: empty (use e.g. /CN=host/O=org)")
    return x509.Name(attrs)


def _attribute(part: str, subject: str) -> x509.NameAttribute[str]:
    key, sep, value = part.partition("=")
    oid = _ATTRS.get(key.strip().upper())
    if not sep or oid is None or not value:
        raise UsageError(f"--subject {subject!r}: cannot read {part!r} (use e.g. /CN=host/O=org)")
    try:
        return x509.NameAttribute(oid, value)
    except ValueError as exc:
        raise UsageError(f"--subject {subject!r}: {part!r}: {exc}") from None


def make_csr(
    ssl_dir: Path, subject: str, sans: list[str], output: Path, key_type: KeyType, new_key: bool = False
) -> str:
    """A CSR for the pending key; the pending key is made only when there is none (or ``new_key``).

    Everything that can be checked is checked before anything is written; the CSR goes out first and the
    pending key last, so a failure leaves the ssl dir as it was.
    """
    name = parse_subject(subject)
    cns = [a.value for a in name.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]
    try:
        names = parse_san(([f"DNS:{cns[0]}"] if cns else []) + sans)
    except ValueError as exc:
        raise UsageError(f"--san: {exc}") from None
    unique = list(dict.fromkeys(names))
    if not ssl_dir.is_dir():
        raise UsageError(f"--ssl-dir {ssl_dir}: no such directory")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: the directory {output.parent} does not exist")
    pending = ssl_dir / PENDING_KEY
    reuse = pending.exists() and not new_key
    if reuse:
        try:
            key: PrivateKey = parse_private_key(_load(pending, "pending key"), str(pending))
        except SourceError as exc:
            raise CommandError(f"{exc.finding}; `web csr --new-key` replaces it") from None
    else:
        key = generate_key(key_type)
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if unique:
        builder = builder.add_extension(x509.SubjectAlternativeName(unique), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    try:
        atomic_write(output, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise CommandError(f"-o {output}: cannot be written: {exc.strerror}; nothing changed") from None
    if not reuse:
        try:
            atomic_write(pending, key_pem(key), 0o600)
        except OSError as exc:
            output.unlink(missing_ok=True)
            raise CommandError(f"{pending}: cannot be written: {exc.strerror}; no CSR made") from None
    how = "the pending key made earlier (give --new-key for a new one)" if reuse else "a new pending key"
    return f"{output}: CSR for {name.rfc4514_string()} with {how}; the key waits in {pending}"


def _load(path: Path, what: str) -> bytes:
    try:
        data, _ = read_source(path, str(path), [path.parent])
    except SourceError as exc:
        raise CommandError(f"{what}: {exc.finding}") from None
    return data


def _authority_certs(ssl_dir: Path) -> list[x509.Certificate]:
    out: list[x509.Certificate] = []
    directory = ssl_dir / "authorities"
    if not directory.is_dir():
        return out
    for name in sorted(os.listdir(directory)):
        if not is_trust_file_name(name):
            continue
        try:
            certs = parse_certificates((directory / name).read_bytes(), name)
        except (SourceError, OSError):
            continue
        out.extend(c for c in certs if verify.is_ca(c))
    return out


@dataclass(frozen=True, slots=True)
class Installed:
    message: str
    verified: bool


def install(ssl_dir: Path, cert_file: Path, key_file: Path | None, chain_file: Path | None) -> Installed:
    key_path = key_file or ssl_dir / PENDING_KEY
    if not key_path.exists():
        raise CommandError(f"{key_path}: no key to go with the certificate (run `web csr` first, or give --key)")
    try:
        key: PrivateKey = parse_private_key(_load(key_path, "--key"), str(key_path))
        certs = parse_certificates(_load(cert_file, "--cert"), str(cert_file))
        if chain_file is not None:
            certs += parse_certificates(_load(chain_file, "--chain"), str(chain_file))
        chain, _extra = verify.order_chain(key, certs, str(cert_file), str(key_path))
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None
    now = dt.datetime.now(dt.UTC)
    for cert in chain:
        problems = verify.validity_findings(cert, str(cert_file), now, 0)
        if problems:
            raise CommandError(f"{problems[0]}; nothing installed")
    anchors = _authority_certs(ssl_dir)
    verified = False
    if verify.issuer_available(chain, anchors):
        roots = anchors + ([chain[-1]] if verify.is_self_signed(chain[-1]) else [])
        checked = verify.verify_chain(chain[0], chain[1:], roots, now)
        if not checked.ok:
            raise CommandError(f"{cert_file}: does not verify against its issuer: {checked.detail}; nothing installed")
        verified = True
    else:
        links = verify.links_findings(chain, str(cert_file))
        if links:
            raise CommandError(f"{links[0]}; nothing installed")
    _keep_previous(ssl_dir)
    atomic_write(ssl_dir / KEY, key_pem(key), 0o600)
    atomic_write(ssl_dir / CRT, cert_pem(*chain), 0o644)
    if key_file is None:
        (ssl_dir / PENDING_KEY).unlink(missing_ok=True)
    subject = chain[0].subject.rfc4514_string()
    if verified:
        return Installed(f"installed {subject} (verified against its issuer)", True)
    issuer = chain[-1].issuer.rfc4514_string()
    return Installed(
        f"installed {subject} UNVERIFIED: its issuer ({issuer}) is not in authorities/; it will be verified "
        "once that CA certificate is put there",
        False,
    )


def _keep_previous(ssl_dir: Path) -> None:
    if (ssl_dir / KEY).exists() and (ssl_dir / CRT).exists():
        atomic_write(ssl_dir / PREVIOUS_KEY, (ssl_dir / KEY).read_bytes(), 0o600)
        atomic_write(ssl_dir / PREVIOUS_CRT, (ssl_dir / CRT).read_bytes(), 0o644)
        (ssl_dir / PREVIOUS_WAS_FALLBACK).unlink(missing_ok=True)
    else:  # the web stores were built from the ssl pair (a fresh install): that is what rollback restores
        atomic_write(ssl_dir / PREVIOUS_WAS_FALLBACK, b"", 0o644)
        for name in (PREVIOUS_KEY, PREVIOUS_CRT):
            (ssl_dir / name).unlink(missing_ok=True)


def rollback(ssl_dir: Path) -> str:
    if (ssl_dir / PREVIOUS_KEY).exists() and (ssl_dir / PREVIOUS_CRT).exists():
        old_key, old_crt = (ssl_dir / PREVIOUS_KEY).read_bytes(), (ssl_dir / PREVIOUS_CRT).read_bytes()
        _keep_previous(ssl_dir)  # so a second rollback undoes the first
        atomic_write(ssl_dir / KEY, old_key, 0o600)
        atomic_write(ssl_dir / CRT, old_crt, 0o644)
        return f"restored the previous web pair ({ssl_dir / CRT})"
    if (ssl_dir / PREVIOUS_WAS_FALLBACK).exists():
        _keep_previous(ssl_dir)
        (ssl_dir / PREVIOUS_WAS_FALLBACK).unlink(missing_ok=True)
        for name in (KEY, CRT):
            (ssl_dir / name).unlink(missing_ok=True)
        return "removed the web pair: the web stores follow the ssl pair again, as before the install"
    raise CommandError(f"{ssl_dir}: no previous web pair to restore")
