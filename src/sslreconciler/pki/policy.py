"""The policy rules (docs/trust.md): what is weak (keys, signatures) or forbids the store's TLS use.
Each rule is a stable finding code; the desired state's `policy` may lower any to a warning."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from sslreconciler.model.findings import Finding, FindingCode, error, warning
from sslreconciler.pki.certfacts import describe, extension, is_self_signed, key_usage

# Policy rules: the finding code of each; the desired state's `policy` may lower any to a warning.
WEAK_RSA_KEY = FindingCode.WEAK_RSA_KEY
WEAK_EC_CURVE = FindingCode.WEAK_EC_CURVE
WEAK_DSA_KEY = FindingCode.WEAK_DSA_KEY
WEAK_SIGNATURE = FindingCode.WEAK_SIGNATURE
KEY_USAGE = FindingCode.KEY_USAGE
POLICY_RULES = (WEAK_RSA_KEY, WEAK_EC_CURVE, WEAK_DSA_KEY, WEAK_SIGNATURE, KEY_USAGE)
MIN_RSA_BITS = 2048
GOOD_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
WEAK_HASHES = {"sha1", "md5"}

SERVER, CLIENT = "server", "client"


def _finding(rule: FindingCode, lowered: Collection[str], file: str, text: str) -> Finding:
    reason = f"{text} (policy rule {rule})"
    return warning(file, reason, rule) if rule in lowered else error(file, reason, rule)


def key_findings(cert: x509.Certificate, file: str, lowered: Collection[str]) -> list[Finding]:
    """RSA below 2048 bits; EC on a curve other than P-256, P-384, P-521; DSA of any size.

    DSA at every size: FIPS 186-5 no longer approves it for making signatures, TLS 1.3 has no DSA, and
    EL9's DEFAULT crypto policy refuses it, so a DSA CA is one the node's other TLS stacks reject anyway;
    a size threshold (FIPS 186-4's 2048 bits) would bless a CA the platform does not accept."""
    key = cert.public_key()
    if isinstance(key, dsa.DSAPublicKey):
        text = f"{describe(cert)} has a {key.key_size}-bit DSA key; DSA is no longer accepted for signing"
        return [_finding(WEAK_DSA_KEY, lowered, file, text)]
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        text = f"{describe(cert)} has a {key.key_size}-bit RSA key, below {MIN_RSA_BITS}"
        return [_finding(WEAK_RSA_KEY, lowered, file, text)]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in GOOD_CURVES:
        text = f"{describe(cert)} has an EC key on curve {key.curve.name}, not P-256, P-384 or P-521"
        return [_finding(WEAK_EC_CURVE, lowered, file, text)]
    return []


def signature_findings(cert: x509.Certificate, file: str, lowered: Collection[str]) -> list[Finding]:
    """A SHA-1 or MD5 signature (callers skip trust anchors and self-signed certificates)."""
    try:
        algorithm = cert.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):  # an algorithm cryptography does not know: not one we can name
        return []
    if algorithm is not None and algorithm.name in WEAK_HASHES:
        text = f"{describe(cert)} is signed with {algorithm.name.upper()}"
        return [_finding(WEAK_SIGNATURE, lowered, file, text)]
    return []


_SERVER_KU = ("digital_signature", "key_encipherment", "key_agreement")
_CLIENT_KU = ("digital_signature", "key_agreement")


def usage_findings(
    leaf: x509.Certificate, file: str, purposes: Collection[str], lowered: Collection[str]
) -> list[Finding]:
    """keyUsage / extendedKeyUsage of the leaf that forbid a TLS use the store is for."""
    out: list[Finding] = []
    try:
        ku = key_usage(leaf)
        eku = extension(leaf, x509.ExtendedKeyUsage)
    except ValueError:
        return [_finding(KEY_USAGE, lowered, file, f"{describe(leaf)} has unreadable extensions")]
    for purpose in sorted(purposes):
        needed = _SERVER_KU if purpose == SERVER else _CLIENT_KU
        if ku is not None and not any(getattr(ku, bit) for bit in needed):
            text = f"{describe(leaf)} has a keyUsage that forbids TLS {purpose} use (needs one of {', '.join(needed)})"
            out.append(_finding(KEY_USAGE, lowered, file, text))
            continue
        oid = ExtendedKeyUsageOID.SERVER_AUTH if purpose == SERVER else ExtendedKeyUsageOID.CLIENT_AUTH
        if isinstance(eku, x509.ExtendedKeyUsage) and not (
            oid in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku
        ):
            text = f"{describe(leaf)} has an extendedKeyUsage without {purpose}Auth"
            out.append(_finding(KEY_USAGE, lowered, file, text))
    return out


def policy_findings(
    chain: Sequence[x509.Certificate],
    file: str,
    anchored: bool,
    purposes: Collection[str] = (),
    lowered: Collection[str] = (),
) -> list[Finding]:
    """Every policy rule over a chain (leaf first; ``anchored``: its last certificate is a trust anchor)."""
    out: list[Finding] = []
    for i, cert in enumerate(chain):
        out.extend(key_findings(cert, file, lowered))
        is_anchor = anchored and i == len(chain) - 1
        if not is_anchor and not is_self_signed(cert):
            out.extend(signature_findings(cert, file, lowered))
    if chain and purposes:
        out.extend(usage_findings(chain[0], file, purposes, lowered))
    return out
