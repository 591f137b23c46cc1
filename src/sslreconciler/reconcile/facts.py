"""Certificate facts, each derived once: the one object the planner asks for them. Pure: no I/O.

A source's certificates and key (parsed once per distinct content), a certificate's DER, OpenSSL subject
hash, CA shape, self-signature and report entry (once per parsed object), a chain's verdict against the
anchors (once until a certificate in it crosses a validity bound). They are kept in the process memo
(``ReconcileCache``): the daemon's lives between reconciles, a one-shot's is primed from the state-dir
record. Without one, the facts are remembered for this reconcile only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from cryptography import x509

from sslreconciler.pki import trust as rules
from sslreconciler.pki import verify
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key
from sslreconciler.pki.subject_hash import subject_hash
from sslreconciler.reconcile.mapping import Mapper, serial_map
from sslreconciler.reconcile.memo import Derived, ReconcileCache, Verdict
from sslreconciler.reconcile.report import CertInfo
from sslreconciler.stores.entries import cert_der

V = TypeVar("V")


class CertFacts:
    """Every fact the planner derives from certificates and source bytes, computed once and remembered."""

    __slots__ = ("map", "memo")

    def __init__(self, memo: ReconcileCache | None = None, map_: Mapper = serial_map) -> None:
        self.memo = memo if memo is not None else ReconcileCache()
        self.memo.trim()
        self.map = map_  # how independent work runs (reconcile/mapping.py): the loop unless handed another

    # --- from a source's bytes (by content: a failure is never remembered, a bad source is looked at afresh)

    def certificates(self, data: bytes, display: str) -> list[x509.Certificate]:
        """Every certificate in a PEM or DER file (``SourceError`` when there is none)."""
        digest = hashlib.sha256(data).digest()
        certs = self.memo.certs.get(digest)
        if certs is None:
            certs = self.memo.certs[digest] = parse_certificates(data, display)
        self.memo.used_certs.add(digest)
        return certs

    def private_key(self, data: bytes, display: str) -> PrivateKey:
        """The one private key of a key file, parsed and checked (``SourceError`` when it is not usable)."""
        key = self.memo.key(data)
        if key is None:
            key = parse_private_key(data, display)
            self.memo.remember_key(data, key)
        return key

    # --- from one parsed certificate (by identity: parsed certificates are shared by content)

    def der(self, cert: x509.Certificate) -> bytes:
        return self._derived(cert, "der", lambda: cert_der(cert))

    def is_ca(self, cert: x509.Certificate) -> bool:
        return self._derived(cert, "is_ca", lambda: verify.is_ca(cert))

    def self_signed(self, cert: x509.Certificate) -> bool:
        """A signature check: once per certificate, however many rules ask."""
        return self._derived(cert, "self_signed", lambda: verify.is_self_signed(cert))

    def cert_info(self, cert: x509.Certificate) -> CertInfo:
        """The report's entry for a certificate."""
        return self._derived(cert, "info", lambda: CertInfo.of(cert))

    def subject_hash(self, cert: x509.Certificate) -> str:
        """By identity in this process; by the DER's digest across runs (the state-dir record keeps them)."""

        key = self._derived(cert, "der_sha256", lambda: hashlib.sha256(self.der(cert)).digest())
        self.memo.used_subject_hashes.add(key)  # every run: what is asked for is what the memo keeps

        def by_content() -> str:
            known = self.memo.subject_hashes.get(key)
            if known is None:
                known = self.memo.subject_hashes[key] = subject_hash(cert)
            return known

        return self._derived(cert, "subject_hash", by_content)

    # --- chains

    def anchors_key(self, anchors: Sequence[x509.Certificate] | rules.Anchors) -> bytes:
        """The anchors as one digest, whatever their order: half of a verdict's key."""
        ders = anchors.der_list if isinstance(anchors, rules.Anchors) else [self.der(a) for a in anchors]
        return hashlib.sha256(b"".join(sorted(ders))).digest()

    def verified(
        self,
        leaf: x509.Certificate,
        others: list[x509.Certificate],
        anchors: rules.Anchors,
        now: dt.datetime,
        anchors_key: bytes = b"",
    ) -> verify.ChainResult:
        """verify_chain, remembering a success until a certificate in the chain crosses a validity bound.
        ``anchors_key``: ``anchors_key(anchors)`` when the caller checks many chains against them."""
        ders = [self.der(c) for c in (leaf, *others)]
        return self.verified_ders(ders, anchors, now, anchors_key, lambda: (leaf, others))

    def verified_ders(
        self,
        ders: Sequence[bytes],
        anchors: rules.Anchors,
        now: dt.datetime,
        anchors_key: bytes,
        parse: Callable[[], tuple[x509.Certificate, list[x509.Certificate]]],
    ) -> verify.ChainResult:
        """``verified`` for a chain given as DERs (leaf first): ``parse`` makes the certificates only when
        the verdict is not remembered."""
        key = (hashlib.sha256(b"".join(ders)).digest(), anchors_key or self.anchors_key(anchors))
        known = self.memo.verdicts.get(key)
        self.memo.used_verdicts.add(key)
        if known is not None and known.holds_at(now.timestamp()):
            return verify.ChainResult(True, known.detail)
        leaf, others = parse()
        checked = verify.verify_chain(leaf, others, anchors, now)
        if checked.ok and checked.chain:
            start = max(c.not_valid_before_utc for c in checked.chain).timestamp()
            end = min(c.not_valid_after_utc for c in checked.chain).timestamp()
            self.memo.verdicts[key] = Verdict(checked.detail, start, end)
        return checked

    def _derived(self, obj: object, what: str, compute: Callable[[], V]) -> V:
        """``compute()`` once per object and kind of derived value (see ``ReconcileCache.derived``)."""
        entry = self.memo.derived.get(id(obj))
        if entry is None or entry.obj is not obj:
            entry = self.memo.derived[id(obj)] = Derived(obj)
        self.memo.used_derived.add(id(obj))
        if what not in entry.values:
            entry.values[what] = compute()
        return cast(V, entry.values[what])
