"""The trusted set as one comparable value: what a monitor (or the collect playbook) compares across nodes.

The fingerprint is SHA-256 over the sorted DER of the trusted certificates (each distinct certificate once),
so two nodes that trust the same CAs agree whatever the files are called. This host's own certificate, which
``authorities.jks`` also carries so peers' copies verify, is left out: it differs on every node by design.
DER is self-delimiting, so the plain concatenation is unambiguous.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping


def trust_set(entries: Mapping[str, bytes]) -> dict[str, object]:
    """``{"fingerprint": <64 hex>, "authorities": [aliases, sorted]}`` for alias -> DER."""
    digest = hashlib.sha256()
    for der in sorted(set(entries.values())):
        digest.update(der)
    return {"fingerprint": digest.hexdigest(), "authorities": sorted(entries)}
