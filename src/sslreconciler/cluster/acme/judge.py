"""What the ACME server sent, checked before anything is written: it is the server's word, not ours.

The certificate must be for our new key, cover every name ordered, and come with issuers that are
CAs; the chain is put in order (leaf first) here, so the leaf that is installed is the one recorded,
whatever order the server sent. (The download itself was bounded by transport.py; web install's
checks — validity, signatures, policy, the issuer in authorities/ — still follow.)
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sslreconciler.cluster.acme.transport import AcmeFailure
from sslreconciler.model.findings import SourceError
from sslreconciler.pki import verify
from sslreconciler.pki.sources import parse_certificates, parse_private_key

DOWNLOAD = "the downloaded certificate"


@dataclass(frozen=True, slots=True)
class Judged:
    chain: list[x509.Certificate]  # leaf first

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    def pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def dns_names(cert: x509.Certificate) -> frozenset[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return frozenset()
    return frozenset(n.lower().rstrip(".") for n in san.get_values_for_type(x509.DNSName))


def judge(fullchain: bytes, key_pem: bytes, names: list[str]) -> Judged:
    try:
        certs = parse_certificates(fullchain, DOWNLOAD)
        key = parse_private_key(key_pem, "the new key")
        chain, _extra = verify.order_chain(key, certs, DOWNLOAD, "the key this run made")
    except SourceError as exc:
        raise AcmeFailure("certificate", str(exc.finding.reason)) from None
    covered = dns_names(chain[0])
    missing = sorted({n.lower().rstrip(".") for n in names} - covered)
    if missing:
        raise AcmeFailure(
            "certificate",
            f"{DOWNLOAD} is for {', '.join(sorted(covered)) or 'no DNS name'}: it does not cover "
            f"{', '.join(missing)}; not installed",
        )
    for issuer in chain[1:]:
        if not verify.is_ca(issuer):
            raise AcmeFailure(
                "certificate",
                f"{DOWNLOAD}'s chain holds {issuer.subject.rfc4514_string()}, which is not a CA "
                "(basicConstraints CA:FALSE) yet signs; not installed",
            )
    return Judged(chain)
