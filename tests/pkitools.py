"""Test-side PKI factory: CAs, intermediates and host certificates with every knob the tests need.

Written apart from the product's pki/issue.py so a bug there cannot hide a bug in what it checks.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)


def new_key(kind: str = "rsa"):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    key: object
    cert: x509.Certificate

    def key_pem(self, fmt: str = "pkcs8") -> bytes:
        f = serialization.PrivateFormat.TraditionalOpenSSL if fmt == "pkcs1" else serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, f, serialization.NoEncryption())

    def key_der(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def fingerprint(self) -> str:
        return self.cert.fingerprint(hashes.SHA256()).hex()


def make_ca(cn: str, kind: str = "rsa", issuer: Issued | None = None, days: int = 3650,
            not_before: dt.datetime | None = None) -> Issued:
    key = new_key(kind)
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(issuer.cert.subject if issuer else name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - dt.timedelta(days=1))
        .not_valid_after((not_before or NOW) + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    )
    return Issued(key, builder.sign(signer_key, hashes.SHA256()))


def make_host(ca: Issued, host: str, kind: str = "rsa", days: int = 825, sans: list[str] | None = None,
              not_before: dt.datetime | None = None, key=None) -> Issued:
    key = key or new_key(kind)
    start = not_before or NOW - dt.timedelta(days=1)
    names = [x509.DNSName(s) for s in (sans if sans is not None else [host])]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@dataclass
class Node:
    """A node's ssl dir in the seed layout."""

    root: Path
    host: str
    ca: Issued
    ssl: Issued

    @property
    def ssl_dir(self) -> Path:
        return self.root / "ssl"

    desired_override: Path | None = None
    web: Issued | None = None  # its own web pair, when seed_node(web=True) made one

    @property
    def desired(self) -> Path:
        return self.desired_override or self.root / "desired-state.json"


def seed_node(root: Path, host: str, ca: Issued, kind: str = "rsa", intermediate: Issued | None = None,
              ca_file: str | None = None, web: bool = False) -> Node:
    issuer = intermediate or ca
    ssl = make_host(issuer, host, kind)
    ssl_dir = root / "ssl"
    write(ssl_dir / "ssl.key", ssl.key_pem(), 0o600)
    chain = ssl.cert_pem() + (intermediate.cert_pem() if intermediate else b"")
    write(ssl_dir / "ssl.crt", chain)
    ca_name = ca_file or f"{ca.cert.subject.rfc4514_string().split('=', 1)[1]}.crt"
    write(ssl_dir / "authorities" / ca_name, ca.cert_pem())
    (root / "desired-state.json").write_text(f'{{"hostname": "{host}"}}')
    node = Node(root, host, ca, ssl)
    if web:  # a web pair of its own, from the same CA
        node.web = make_host(ca, host)
        write(ssl_dir / "ssl-web.key", node.web.key_pem(), 0o600)
        write(ssl_dir / "ssl-web.crt", node.web.cert_pem())
    return node
