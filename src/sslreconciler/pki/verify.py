"""Checks on parsed keys and certificates: key match, chain order, chain of trust, validity, names.

Chain verification uses ``cryptography.x509.verification`` with extension policies relaxed to what a
private cluster CA needs (a CA must still say CA:TRUE). Certificates from older tools (X.509 v1 CAs
without basicConstraints, as old gen-ssl-keys.sh made) cannot satisfy that verifier at all, so when it
refuses, a plain walk checks each signature and validity period with ``verify_directly_issued_by``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification as xv

from sslreconciler.findings import Finding, SourceError, error, warning
from sslreconciler.pki.sources import PrivateKey

MAX_CHAIN_DEPTH = 8


def public_key_der(obj: x509.Certificate | PrivateKey) -> bytes:
    public = obj.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    return public_key_der(key) == public_key_der(cert)


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """CA:TRUE, or a self-signed certificate without basicConstraints (an old-style v1 CA)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return is_self_signed(cert)
    except ValueError:
        return False


def describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def order_chain(
    key: PrivateKey, certs: Sequence[x509.Certificate], display: str, key_display: str = "its private key"
) -> tuple[list[x509.Certificate], list[Finding]]:
    """Leaf (the certificate of ``key``) first, then each issuer found in ``certs``, in order."""
    leaves = [c for c in certs if key_matches(key, c)]
    if not leaves:
        raise SourceError(error(display, f"does not match the private key in {key_display}", "key-mismatch"))
    chain = [leaves[0]]
    rest = [c for c in certs if c is not leaves[0]]
    while rest and len(chain) <= MAX_CHAIN_DEPTH:
        current = chain[-1]
        if is_self_signed(current):
            break
        issuer = next((c for c in rest if c.subject == current.issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
        rest.remove(issuer)
    findings = []
    if len(rest) == 1:
        findings.append(
            warning(
                display, f"holds a certificate outside the chain, left out: {describe(rest[0])}", "extra-certificate"
            )
        )
    elif rest:  # one finding, however many: a file of hundreds must not flood the report
        findings.append(
            warning(
                display,
                f"holds {len(rest)} certificates outside the chain (or past the "
                f"{MAX_CHAIN_DEPTH}-deep limit), left out; first: {describe(rest[0])}",
                "extra-certificate",
            )
        )
    return chain, findings


def validity_findings(cert: x509.Certificate, display: str, now: dt.datetime, warn_days: int) -> list[Finding]:
    """Expired or not yet valid: an error; expiring within ``warn_days``: a warning."""
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < not_before:
        return [error(display, f"is not valid before {not_before:%Y-%m-%d %H:%M}Z", "not-yet-valid")]
    if now > not_after:
        return [error(display, f"expired on {not_after:%Y-%m-%d %H:%M}Z", "expired")]
    days_left = (not_after - now).days
    if days_left < warn_days:
        return [warning(display, f"expires in {days_left} days ({not_after:%Y-%m-%d})", "expiring")]
    return []


def _dns_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, tail = host.partition(".")
        return bool(head) and tail == pattern[2:]
    return pattern == host


def hostname_findings(cert: x509.Certificate, display: str, hostname: str) -> list[Finding]:
    """A warning when ``hostname`` is not among the certificate's subjectAltNames."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [warning(display, f"has no subjectAltName; host name {hostname} is not in it", "hostname")]
    except ValueError:
        return [warning(display, "has an unreadable subjectAltName", "hostname")]
    if any(_dns_matches(n, hostname) for n in san.get_values_for_type(x509.DNSName)):
        return []
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    if address is not None and address in san.get_values_for_type(x509.IPAddress):
        return []
    return [warning(display, f"subjectAltName does not name this host ({hostname})", "hostname")]


@dataclass(frozen=True, slots=True)
class ChainResult:
    ok: bool
    detail: str  # why it failed, or how it was verified
    chain: tuple[x509.Certificate, ...] = ()


def _short(exc: Exception) -> str:
    text = str(exc)
    return text.split(" (encountered processing", 1)[0].removeprefix("validation failed: ")


def relaxed_verifier(anchors: Sequence[x509.Certificate], now: dt.datetime) -> xv.ClientVerifier:
    ca_policy = xv.ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, xv.Criticality.AGNOSTIC, None)
    return (
        xv.PolicyBuilder()
        .store(xv.Store(list(anchors)))
        .time(now)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=xv.ExtensionPolicy.permit_all())
        .build_client_verifier()
    )


def _signature_walk(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
) -> ChainResult:
    """Signatures and validity only, for certificates the path-validation policy cannot take."""
    anchor_ders = {a.public_bytes(serialization.Encoding.DER) for a in anchors}
    pool = [*intermediates, *anchors]
    chain = [leaf]
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH + 1):
        if not current.not_valid_before_utc <= now <= current.not_valid_after_utc:
            return ChainResult(False, f"{describe(current)} is outside its validity period")
        if current.public_bytes(serialization.Encoding.DER) in anchor_ders:
            return ChainResult(True, "verified by signature (certificates lack modern extensions)", tuple(chain))
        candidates = [c for c in pool if c.subject == current.issuer and c is not current]
        issuer = None
        for candidate in candidates:
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            issuer = candidate
            break
        if issuer is None:
            reason = "bad signature" if candidates else "issuer not found"
            return ChainResult(False, f"{reason} for {describe(current)}")
        chain.append(issuer)
        current = issuer
    return ChainResult(False, "chain too deep")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: dt.datetime,
    verifier: xv.ClientVerifier | None = None,
) -> ChainResult:
    """Does ``leaf`` (with ``intermediates``) chain to one of ``anchors`` at time ``now``?

    ``verifier``: one built by ``relaxed_verifier(anchors, now)``, to share across many leaves.
    """
    if not anchors:
        return ChainResult(False, "no CA certificate to verify against")
    try:
        verified = (verifier or relaxed_verifier(anchors, now)).verify(leaf, list(intermediates))
        return ChainResult(True, "verified", tuple(verified.chain))
    except xv.VerificationError as exc:
        first_failure = _short(exc)
    except ValueError as exc:  # e.g. an anchor without basicConstraints
        first_failure = str(exc)
    walked = _signature_walk(leaf, intermediates, anchors, now)
    if walked.ok:
        return walked
    return ChainResult(False, f"{walked.detail} ({first_failure})" if walked.detail else first_failure)


def issuer_available(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]) -> bool:
    """Is the issuer of the chain's top certificate at hand (in the chain itself or among anchors)?"""
    top = chain[-1]
    return is_self_signed(top) or any(a.subject == top.issuer for a in anchors)


def links_findings(chain: Sequence[x509.Certificate], display: str) -> list[Finding]:
    """Each certificate in a partial chain must be signed by the next one."""
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            return [error(display, f"{describe(child)} is not signed by {describe(parent)}", "bad-chain")]
    return []
