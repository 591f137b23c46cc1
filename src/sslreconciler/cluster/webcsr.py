"""``web csr``: a CSR for an outside CA, for the pending key of the desired state's web pair
(cluster/layout.py), kept beside the live one (``ssl-web.key.pending`` with the seed's names, 0600)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from sslreconciler.cluster.layout import WebPair
from sslreconciler.cluster.webcert import read_here
from sslreconciler.fsio import atomic_write, atomic_write_at, owner_for_new_files
from sslreconciler.model.errors import CommandError, UsageError
from sslreconciler.model.findings import SourceError
from sslreconciler.pki.issue import KeyType, generate_key, key_pem, parse_san
from sslreconciler.pki.sources import PrivateKey, parse_private_key
from sslreconciler.rootread import opened_ssl_dir

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
    ssl_dir: Path,
    web: WebPair,
    subject: str,
    sans: list[str],
    output: Path,
    key_type: KeyType,
    new_key: bool = False,
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
    pending = ssl_dir / web.pending_key
    with opened_ssl_dir(ssl_dir) as ssl_fd:  # read inside the ssl dir: a planted link is refused, not followed
        pending_data = None if new_key else read_here(ssl_fd, web.pending_key, ssl_dir)
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
                atomic_write_at(ssl_fd, web.pending_key, key_pem(key), 0o600, *owner_for_new_files(ssl_fd))
        except OSError as exc:
            output.unlink(missing_ok=True)
            raise CommandError(f"{pending}: cannot be written: {exc.strerror}; no CSR made") from None
    how = "the pending key made earlier (give --new-key for a new one)" if reuse else "a new pending key"
    return f"{output}: CSR for {name.rfc4514_string()} with {how}; the key waits in {pending}"
