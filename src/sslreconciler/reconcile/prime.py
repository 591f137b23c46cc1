"""A cold build's per-certificate facts worked out for all trust certificates at once, on both cores. Pure.

What every trusted certificate costs the first time it is seen (measured: docs/benchmarks.md): its
self-signature check (about 85 µs for ECDSA P-256), its report entry (two RFC 4514 names and a
fingerprint), its CA shape and its subject hash. ``prime`` hands those to the facts' mapper
(reconcile/mapping.py) and remembers the answers in ``CertFacts``, so the rules that ask later find them:

- where worker processes may run (a one-shot), ``cold_facts`` runs there on each DER: plain data in, plain
  data out, every fact of the list;
- else where threads may (the daemon), only the signature checks, which release the GIL;
- else nothing: the facts are derived one by one as the rules ask, as before.

The answers are the ones ``CertFacts`` would derive itself (the same functions on the same certificate),
so priming changes when a fact is computed, never what it is: ``tests/test_parallel_build.py`` builds one
tree both ways and compares the stores, links and report byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography import x509

from sslreconciler.pki import verify
from sslreconciler.pki.subject_hash import subject_hash
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.report import CertInfo

# (is_ca, self_signed, subject hash, the report entry's fields in CertInfo's order), or None: not primed
Cold = tuple[bool, bool, str, tuple[str, ...]] | None


def cold_facts(der: bytes) -> Cold:
    """One certificate's first-sight facts, from its DER (run in a worker process: plain data only)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        info = CertInfo.of(cert)
        fields = (info.subject, info.issuer, info.serial, info.not_after, info.fingerprint_sha256)
        return verify.is_ca(cert), verify.is_self_signed(cert), subject_hash(cert), (*fields, *_cns(info))
    except Exception:  # whatever fails here fails again where the rules ask, and is reported there
        return None


def self_signed(cert: x509.Certificate) -> bool | None:
    """The self-signature check alone (run on a thread: it releases the GIL), or None: not primed."""
    try:
        return verify.is_self_signed(cert)
    except Exception:  # as above: the rules ask again and report it
        return None


def _cns(info: CertInfo) -> tuple[str, str]:
    return info.subject_cn, info.issuer_cn


def prime(facts: CertFacts, certs: Sequence[x509.Certificate]) -> None:
    """Work out the first-sight facts of ``certs`` not seen before, in parallel where the mapper can."""
    seen: set[int] = set()
    fresh = []
    for cert in certs:
        entry = facts.memo.derived.get(id(cert))
        if id(cert) in seen or (entry is not None and entry.obj is cert and "self_signed" in entry.values):
            continue
        seen.add(id(cert))
        fresh.append(cert)
    if facts.map.workers_for(len(fresh), "processes") > 1:
        ders = [facts.der(cert) for cert in fresh]
        for cert, der, cold in zip(fresh, ders, facts.map(cold_facts, ders, via="processes"), strict=True):
            if cold is None:
                continue
            is_ca, signed, digest, info = cold
            facts.remember(cert, {"is_ca": is_ca, "self_signed": signed, "info": CertInfo(*info)})
            facts.memo.subject_hashes.setdefault(hashlib.sha256(der).digest(), digest)
    elif facts.map.workers_for(len(fresh), "threads") > 1:
        for cert, checked in zip(fresh, facts.map(self_signed, fresh, via="threads"), strict=True):
            if checked is not None:
                facts.remember(cert, {"self_signed": checked})
