"""The trusted set as one comparable value: what a monitor (or the collect playbook) compares across nodes.

The fingerprint is SHA-256 over the sorted DER of the trusted certificates (each distinct certificate once),
so two nodes that trust the same CAs agree whatever the files are called. This host's own certificate, which
``authorities.jks`` also carries so peers' copies verify, is left out: it differs on every node by design.
DER is self-delimiting, so the plain concatenation is unambiguous.

``cas`` names each trusted certificate (alias, subject, SHA-256 of its DER): what a drift report shows as
the CAs a node has extra or lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from cryptography import x509

from sslreconciler.pki.certfacts import describe


def _subject(der: bytes) -> str:
    try:
        return describe(x509.load_der_x509_certificate(der))
    except ValueError:  # never expected: the entries were parsed before they got here
        return "(unreadable)"


def trust_set(entries: Mapping[str, bytes], subjects: Mapping[bytes, str] | None = None) -> dict[str, object]:
    """``{"fingerprint": <64 hex>, "authorities": [aliases, sorted], "cas": [{alias, subject, fingerprint}]}``
    for alias -> DER; ``subjects``: DER -> subject where already known (else parsed here)."""
    known = subjects or {}
    digest = hashlib.sha256()
    for der in sorted(set(entries.values())):
        digest.update(der)
    cas = [
        {"alias": alias, "subject": known.get(der) or _subject(der), "fingerprint": hashlib.sha256(der).hexdigest()}
        for alias, der in sorted(entries.items())
    ]
    return {"fingerprint": digest.hexdigest(), "authorities": sorted(entries), "cas": cas}
