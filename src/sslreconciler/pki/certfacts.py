"""What a certificate says about itself, as the trust rules read it: its name in messages, its DER, who
signed it (checked with the issuer's key directly), and its extensions (None when absent)."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer`` names and signs ``child``.

    Checked with the issuer's public key directly: ``verify_directly_issued_by`` refuses SHA-1
    signatures outright, which must reach the policy rule (and may be lowered) instead.
    """
    if child.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        params = child.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey) and isinstance(params, padding.PKCS1v15 | padding.PSS):
            algorithm = child.signature_hash_algorithm
            if algorithm is None:
                return False
            key.verify(child.signature, child.tbs_certificate_bytes, params, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            key.verify(child.signature, child.tbs_certificate_bytes, params)
        else:  # Ed25519/Ed448 and the rest: the library's own check
            child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and signed_by(cert, cert)


def self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    """The extension's value; None when absent. ValueError when the extensions cannot be read."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    value = extension(cert, x509.BasicConstraints)
    return value if isinstance(value, x509.BasicConstraints) else None


def key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    value = extension(cert, x509.KeyUsage)
    return value if isinstance(value, x509.KeyUsage) else None
