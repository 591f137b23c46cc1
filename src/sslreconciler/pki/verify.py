"""Checks on parsed keys and certificates: key match, chain order, chain of trust, validity, names.

Whether a chain is verified is decided in one place, ``pki/trust.py`` (RFC 5280 path rules); this
module's ``verify_chain`` is that function under the name every caller has used.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sslreconciler.model.findings import Finding, FindingCode, SourceError, error, warning
from sslreconciler.model.text import plural
from sslreconciler.pki import trust
from sslreconciler.pki.sources import PrivateKey
from sslreconciler.pki.trust import MAX_CHAIN_DEPTH, ChainResult, describe, is_self_signed

__all__ = ["MAX_CHAIN_DEPTH", "ChainResult", "describe", "is_self_signed"]


def public_key_der(obj: x509.Certificate | PrivateKey) -> bytes:
    public = obj.public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(key: PrivateKey, cert: x509.Certificate) -> bool:
    return public_key_der(key) == public_key_der(cert)


def is_ca(cert: x509.Certificate) -> bool:
    """Shaped as a CA: CA:TRUE, or self-signed without basicConstraints (an old-style v1 CA).

    Whether it may actually issue (keyCertSign, v1 or not) is ``trust.anchor_problem``'s answer.
    """
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return is_self_signed(cert)
    except ValueError:
        return False


def order_chain(
    key: PrivateKey, certs: Sequence[x509.Certificate], display: str, key_display: str = "its private key"
) -> tuple[list[x509.Certificate], list[Finding]]:
    """Leaf (the certificate of ``key``) first, then each issuer found in ``certs``, in order."""
    leaves = [c for c in certs if key_matches(key, c)]
    if not leaves:
        raise SourceError(error(display, f"does not match the private key in {key_display}", FindingCode.KEY_MISMATCH))
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
                display,
                f"holds a certificate outside the chain, left out: {describe(rest[0])}",
                FindingCode.EXTRA_CERTIFICATE,
            )
        )
    elif rest:  # one finding, however many: a file of hundreds must not flood the report
        findings.append(
            warning(
                display,
                f"holds {len(rest)} certificates outside the chain (or past the "
                f"{MAX_CHAIN_DEPTH}-deep limit), left out; first: {describe(rest[0])}",
                FindingCode.EXTRA_CERTIFICATE,
            )
        )
    return chain, findings


def validity_findings(cert: x509.Certificate, display: str, now: dt.datetime, warn_days: int) -> list[Finding]:
    """Expired or not yet valid: an error; expiring within ``warn_days``: a warning."""
    return validity_bounds_findings(cert.not_valid_before_utc, cert.not_valid_after_utc, display, now, warn_days)


def validity_bounds_findings(
    not_before: dt.datetime, not_after: dt.datetime, display: str, now: dt.datetime, warn_days: int
) -> list[Finding]:
    """``validity_findings`` from a certificate's bounds (UTC): what a recorded certificate is judged by."""
    if now < not_before:
        return [error(display, f"is not valid before {not_before:%Y-%m-%d %H:%M}Z", FindingCode.NOT_YET_VALID)]
    if now > not_after:
        return [error(display, f"expired on {not_after:%Y-%m-%d %H:%M}Z", FindingCode.EXPIRED)]
    days_left = (not_after - now).days
    if days_left < warn_days:
        return [warning(display, f"expires in {plural(days_left, 'day')} ({not_after:%Y-%m-%d})", FindingCode.EXPIRING)]
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
        return [warning(display, f"has no subjectAltName; host name {hostname} is not in it", FindingCode.HOSTNAME)]
    except ValueError:
        return [warning(display, "has an unreadable subjectAltName", FindingCode.HOSTNAME)]
    if any(_dns_matches(n, hostname) for n in san.get_values_for_type(x509.DNSName)):
        return []
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
    if address is not None and address in san.get_values_for_type(x509.IPAddress):
        return []
    return [warning(display, f"subjectAltName does not name this host ({hostname})", FindingCode.HOSTNAME)]


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: trust.Anchors | Sequence[x509.Certificate],
    now: dt.datetime,
) -> ChainResult:
    """Does ``leaf`` (with ``intermediates``) chain to one of ``anchors`` at ``now``? See pki/trust.py."""
    return trust.validate_path(leaf, intermediates, anchors, now)


def links_findings(chain: Sequence[x509.Certificate], display: str) -> list[Finding]:
    """Each certificate in a partial chain must be signed by the next one."""
    for child, parent in itertools.pairwise(chain):
        if not trust.signed_by(child, parent):
            return [error(display, f"{describe(child)} is not signed by {describe(parent)}", FindingCode.BAD_CHAIN)]
    return []
