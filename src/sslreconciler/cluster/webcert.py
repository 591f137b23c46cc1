"""The web-certificate workflow: a CSR for an outside CA, installing what it signs, rolling back.

``web csr`` keeps the new key beside the live one as ``ssl-web.key.pending`` (0600). ``web install``
checks the signed certificate against that key (or a given one), verifies it with the one trust
function (pki/trust.py) when its issuer is in ``authorities/`` and otherwise installs it unverified,
as sipXecs does (a self-signed certificate, or one whose root only came with it, is unverified); the
current pair is kept as ``ssl-web.{key,crt}.previous`` so ``web rollback`` can put it back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from sslreconciler.fsio import (
    MAX_SOURCE_BYTES,
    atomic_write,
    atomic_write_at,
    list_names,
    lstat_at,
    open_subdir,
    owner_for_new_files,
    read_at,
    read_source,
    replace_together_at,
)
from sslreconciler.model.errors import CommandError, UsageError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, key_pem, parse_san
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key
from sslreconciler.pki.verdict import judge_chain
from sslreconciler.reconcile.observe import is_trust_file_name
from sslreconciler.rootread import opened_ssl_dir
from sslreconciler.writer_lock import locked_dir

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
    with opened_ssl_dir(ssl_dir) as ssl_fd:  # read inside the ssl dir: a planted link is refused, not followed
        pending_data = None if new_key else _read_here(ssl_fd, PENDING_KEY, ssl_dir)
    reuse = pending_data is not None
    if pending_data is not None:
        try:
            key: PrivateKey = parse_private_key(pending_data, str(pending))
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
            with opened_ssl_dir(ssl_dir) as ssl_fd:  # inside the ssl dir, never through a planted link
                atomic_write_at(ssl_fd, PENDING_KEY, key_pem(key), 0o600, *owner_for_new_files(ssl_fd))
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


def _authority_certs(ssl_fd: int) -> list[x509.Certificate]:
    """The CAs in authorities/: a real directory only, regular files only, each read bounded."""
    out: list[x509.Certificate] = []
    try:
        dir_fd = open_subdir(ssl_fd, "authorities")
    except OSError:
        return out  # missing, or a symlink: no issuer at hand here
    try:
        names, _ = list_names(dir_fd, "authorities")
        for name in names:
            if not is_trust_file_name(name):
                continue
            try:
                data, _ = read_at(dir_fd, name, name, None)
                certs = parse_certificates(data, name)
            except SourceError:
                continue  # a FIFO, a link, garbage: not a CA anyone can rely on
            if all(verify.is_ca(c) and trust.anchor_problem(c) is None for c in certs):
                out.extend(certs)
    finally:
        os.close(dir_fd)
    return out


def _read_here(ssl_fd: int, name: str, ssl_dir: Path) -> bytes | None:
    """A file of the ssl dir itself, never through a link, bounded; None when there is none."""
    try:
        return read_at(ssl_fd, name, str(ssl_dir / name), None, MAX_SOURCE_BYTES)[0]
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            return None
        raise CommandError(f"{exc.finding}; nothing changed") from None


def _remove_here(ssl_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=ssl_fd)


@dataclass(frozen=True, slots=True)
class Installed:
    message: str
    verified: bool


def install(
    ssl_dir: Path,
    cert_file: Path,
    key_file: Path | None,
    chain_file: Path | None,
    lowered: frozenset[str] = frozenset(),
) -> Installed:
    """Check the signed certificate with the reconcile's own trust and policy rules, then put it in place.

    ``lowered``: the policy rules the desired state lowers to a warning.
    """
    with locked_dir(ssl_dir) as ssl_fd, _write_errors_named(ssl_dir, "nothing installed"):
        return _install(ssl_dir, ssl_fd, cert_file, key_file, chain_file, lowered)  # works inside the dir fd


@contextlib.contextmanager
def _write_errors_named(ssl_dir: Path, outcome: str) -> Iterator[None]:
    """A write that fails (disk full, read-only) is a clear error, not a traceback; the pair is whole."""
    try:
        yield
    except OSError as exc:
        raise CommandError(
            f"{ssl_dir}: the web pair cannot be written ({exc.strerror or exc}); {outcome}, the files as they were"
        ) from None


def install_data(ssl_dir: Path, cert_data: bytes, key_data: bytes, display: str) -> Installed:
    """``install`` for a pair held in memory (``acme renew``'s): no file but the ssl dir's is written,
    so no work directory anyone else could swap (the key never leaves memory before it is installed)."""
    with locked_dir(ssl_dir) as ssl_fd, _write_errors_named(ssl_dir, "nothing installed"):
        try:
            key = parse_private_key(key_data, f"{display} (key)")
            certs = parse_certificates(cert_data, display)
        except SourceError as exc:
            raise CommandError(str(exc.finding)) from None
        return _install_checked(ssl_dir, ssl_fd, key, certs, display, f"{display} (key)", frozenset(), False)


def _install(
    ssl_dir: Path,
    ssl_fd: int,
    cert_file: Path,
    key_file: Path | None,
    chain_file: Path | None,
    lowered: frozenset[str],
) -> Installed:
    key_path = key_file or ssl_dir / PENDING_KEY
    key_data = _load(key_file, "--key") if key_file is not None else _read_here(ssl_fd, PENDING_KEY, ssl_dir)
    if key_data is None:
        raise CommandError(f"{key_path}: no key to go with the certificate (run `web csr` first, or give --key)")
    try:
        key: PrivateKey = parse_private_key(key_data, str(key_path))
        certs = parse_certificates(_load(cert_file, "--cert"), str(cert_file))
        if chain_file is not None:
            certs += parse_certificates(_load(chain_file, "--chain"), str(chain_file))
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None
    return _install_checked(ssl_dir, ssl_fd, key, certs, str(cert_file), str(key_path), lowered, key_file is None)


def _install_checked(
    ssl_dir: Path,
    ssl_fd: int,
    key: PrivateKey,
    certs: list[x509.Certificate],
    cert_file: str,
    key_path: str,
    lowered: frozenset[str],
    from_pending: bool,
) -> Installed:
    try:
        chain, _extra = verify.order_chain(key, certs, cert_file, key_path)
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None
    now = dt.datetime.now(dt.UTC)
    for cert in chain:
        problems = verify.validity_findings(cert, str(cert_file), now, 0)
        if problems:
            raise CommandError(f"{problems[0]}; nothing installed")
    anchors = trust.Anchors.of(_authority_certs(ssl_fd))
    verdict = judge_chain(chain, anchors, now, str(cert_file), {trust.SERVER}, lowered)
    refused = verdict.refusal
    if refused is not None:
        raise CommandError(f"{refused}; nothing installed")
    verified = verdict.verified
    _keep_previous(ssl_dir, ssl_fd)
    # both or neither: a write error after the key is written must not leave it beside the old certificate
    replace_together_at(
        ssl_fd, [(KEY, key_pem(key), 0o600), (CRT, cert_pem(*chain), 0o644)], *owner_for_new_files(ssl_fd)
    )
    if from_pending:
        _remove_here(ssl_fd, PENDING_KEY)
    subject = chain[0].subject.rfc4514_string()
    if verified:
        return Installed(f"installed {subject} (verified against its issuer)", True)
    issuer = chain[-1].issuer.rfc4514_string()
    return Installed(
        f"installed {subject} UNVERIFIED: its issuer ({issuer}) is not in authorities/; it will be verified "
        "once that CA certificate is put there",
        False,
    )


def _keep_previous(ssl_dir: Path, ssl_fd: int) -> None:
    """Copy the current web pair aside, read without following links (a link is refused, not copied)."""
    key, crt = _read_here(ssl_fd, KEY, ssl_dir), _read_here(ssl_fd, CRT, ssl_dir)
    owner = owner_for_new_files(ssl_fd)
    if key is not None and crt is not None:
        replace_together_at(ssl_fd, [(PREVIOUS_KEY, key, 0o600), (PREVIOUS_CRT, crt, 0o644)], *owner)
        _remove_here(ssl_fd, PREVIOUS_WAS_FALLBACK)
    else:  # the web stores were built from the ssl pair (a fresh install): that is what rollback restores
        atomic_write_at(ssl_fd, PREVIOUS_WAS_FALLBACK, b"", 0o644, *owner)
        for name in (PREVIOUS_KEY, PREVIOUS_CRT):
            _remove_here(ssl_fd, name)


def rollback(ssl_dir: Path) -> str:
    with locked_dir(ssl_dir) as ssl_fd, _write_errors_named(ssl_dir, "nothing rolled back"):
        return _rollback(ssl_dir, ssl_fd)


def _rollback(ssl_dir: Path, ssl_fd: int) -> str:
    old_key, old_crt = _read_here(ssl_fd, PREVIOUS_KEY, ssl_dir), _read_here(ssl_fd, PREVIOUS_CRT, ssl_dir)
    if old_key is not None and old_crt is not None:
        _keep_previous(ssl_dir, ssl_fd)  # so a second rollback undoes the first
        replace_together_at(ssl_fd, [(KEY, old_key, 0o600), (CRT, old_crt, 0o644)], *owner_for_new_files(ssl_fd))
        return f"restored the previous web pair ({ssl_dir / CRT})"
    if lstat_at(ssl_fd, PREVIOUS_WAS_FALLBACK) is not None:
        _keep_previous(ssl_dir, ssl_fd)
        _remove_here(ssl_fd, PREVIOUS_WAS_FALLBACK)
        for name in (KEY, CRT):
            _remove_here(ssl_fd, name)
        return "removed the web pair: the web stores follow the ssl pair again, as before the install"
    raise CommandError(f"{ssl_dir}: no previous web pair to restore")
