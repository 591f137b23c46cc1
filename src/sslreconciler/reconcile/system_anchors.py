"""The system trust store's roots as anchors, for the pairs whose ``verify_with`` names ``system``. Pure.

They verify those pairs' chains only: nothing here reaches the truststore's entries, the hash links or
the trust fingerprint (``trust_files.load_trust`` never sees them). The certificates are parsed once per
distinct file content (``facts.certificates``), and the anchors are built once per process for the same
store (``_LAST``): a no-op reconcile pays for a digest of the bytes, not for hundreds of parses.
"""

from __future__ import annotations

import hashlib
import warnings

from cryptography.utils import CryptographyDeprecationWarning

from sslreconciler.model.findings import SourceError
from sslreconciler.pki import trust as rules
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.state import Inputs

SYSTEM_TRUST = "system trust"

_LAST: dict[bytes, rules.Anchors] = {}  # the store's digest -> its anchors: one entry, this process's


def system_anchors(inputs: Inputs, facts: CertFacts) -> rules.Anchors:
    """Every CA certificate of the system store that can be an anchor; empty when none was read.
    A file that does not parse is skipped (the distribution's business, not this node's)."""
    store = inputs.system_trust
    if store is None or not store.files:
        return rules.Anchors()
    digest = hashlib.sha256()
    for path, data in store.files:
        digest.update(hashlib.sha256(path.encode() + b"\0" + data).digest())
    key = digest.digest()
    known = _LAST.get(key)
    if known is not None:
        return known
    anchors = rules.Anchors()
    with warnings.catch_warnings():  # e.g. a distribution's old root with a negative serial: not ours to report
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for path, data in store.files:
            try:
                certs = facts.certificates(data, path)
            except SourceError:
                continue
            for cert in certs:
                if not anchors.holds(cert) and rules.anchor_problem(cert) is None:
                    anchors.add(cert)
    _LAST.clear()
    _LAST[key] = anchors
    return anchors
