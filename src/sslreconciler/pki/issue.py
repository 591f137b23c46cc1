"""Make keys and certificates: the cluster CA and host certificates (what gen-ssl-keys.sh did)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sslreconciler.pki.lifetimes import CA_DAYS, HOST_DAYS
from sslreconciler.pki.sources import PrivateKey

KeyType = Literal["rsa2048", "rsa4096", "ec-p256"]
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock differences between cluster nodes


def generate_key(key_type: KeyType = "rsa2048") -> PrivateKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=4096 if key_type == "rsa4096" else 2048)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def make_ca(common_name: str, key: PrivateKey, days: int = CA_DAYS, now: dt.datetime | None = None) -> x509.Certificate:
    """A self-signed cluster CA: CA:TRUE, keyCertSign and cRLSign."""
    now = now or dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )


def parse_san(entries: Sequence[str]) -> list[x509.GeneralName]:
    """``DNS:name``, ``IP:addr``, ``URI:uri`` (a bare value is a DNS name). ValueError when malformed."""
    out: list[x509.GeneralName] = []
    for entry in entries:
        kind, sep, value = entry.partition(":")
        if not sep:
            kind, value = "DNS", entry
        kind = kind.upper()
        if kind == "DNS":
            out.append(x509.DNSName(value))
        elif kind == "IP":
            out.append(x509.IPAddress(ipaddress.ip_address(value)))
        elif kind == "URI":
            out.append(x509.UniformResourceIdentifier(value))
        else:
            raise ValueError(f"unknown subjectAltName kind {kind!r} (use DNS:, IP: or URI:)")
    return out


def issue_host_cert(
    ca_key: PrivateKey,
    ca_cert: x509.Certificate,
    host: str,
    key: PrivateKey,
    days: int = HOST_DAYS,
    sans: Sequence[x509.GeneralName] = (),
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A host certificate for TLS server and client use, signed by the cluster CA."""
    now = now or dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    names.extend(n for n in sans if n not in names)
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
