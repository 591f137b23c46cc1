"""Memory a long-running process keeps between reconciles, so a no-op stays cheap.

Parsing an RSA key validates it (tens of milliseconds) and opening a PKCS#12 file derives keys from
the password (tens of milliseconds per store). Neither needs doing again for bytes already seen: keys
are remembered by the SHA-256 of their source bytes, and a store whose bytes are exactly what this
process last wrote or opened, with the same password and profile, holds what it held then.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography import x509

from sslreconciler.pki.sources import PrivateKey
from sslreconciler.stores.entries import StoreContent

MAX_KEYS = 64
MAX_CERT_FILES = 50_000  # past this the memo starts over rather than grow without bound


@dataclass(slots=True)
class ReconcileCache:
    _keys: OrderedDict[bytes, PrivateKey] = field(default_factory=OrderedDict, repr=False)
    # artifact path -> (SHA-256 of its bytes, digest of the password and profile, what those bytes hold)
    stores: dict[str, tuple[bytes, bytes, StoreContent, str | None]] = field(default_factory=dict, repr=False)

    # SHA-256 of a certificate file's bytes -> its parsed certificates
    certs: dict[bytes, list[x509.Certificate]] = field(default_factory=dict, repr=False)
    # SHA-256 of a certificate's DER -> OpenSSL subject hash
    subject_hashes: dict[bytes, str] = field(default_factory=dict, repr=False)
    # (chain digest, anchors digest) -> (verified chain detail, valid from, valid until): a chain that
    # verified stays verified while no certificate in it crosses a validity boundary
    verdicts: dict[tuple[bytes, bytes], tuple[str, float, float]] = field(default_factory=dict, repr=False)

    def trim(self) -> None:
        for memo in (self.certs, self.subject_hashes, self.verdicts):
            if len(memo) > MAX_CERT_FILES:
                memo.clear()

    def key(self, data: bytes) -> PrivateKey | None:
        digest = hashlib.sha256(data).digest()
        key = self._keys.get(digest)
        if key is not None:
            self._keys.move_to_end(digest)
        return key

    def remember_key(self, data: bytes, key: PrivateKey) -> None:
        self._keys[hashlib.sha256(data).digest()] = key
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)
