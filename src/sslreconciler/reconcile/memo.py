"""Memory a long-running process keeps between reconciles, so a no-op stays cheap.

Parsing an RSA key validates it (tens of milliseconds) and opening a PKCS#12 file derives keys from
the password (tens of milliseconds per store). Neither needs doing again for bytes already seen: keys
are remembered by the SHA-256 of their source bytes, and a store whose bytes are exactly what this
process last wrote or opened, with the same password and profile, holds what it held then.

Only tables here: ``facts.CertFacts`` derives and fills the certificate ones, ``existing`` and
``execute`` the stores'; ``record`` keeps part of it in the state dir between one-shot runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from sslreconciler.pki.sources import PrivateKey
from sslreconciler.reconcile.stat_index import StatIndex
from sslreconciler.stores.entries import StoreContent
from sslreconciler.stores.pkcs12 import Profile

MAX_KEYS = 64
MAX_CERT_FILES = 50_000  # a backstop only: past this the memo starts over (``new_run`` keeps it far below)


@dataclass(frozen=True, slots=True)
class KnownStore:
    """Bytes this process wrote or opened at a store's path, and what they hold."""

    digest: bytes  # SHA-256 of the store's bytes
    access: bytes  # ``access_digest`` of the kind, profile and password it was opened with
    content: StoreContent = field(repr=False)
    profile: Profile | None  # the PKCS#12 profile read from it (None for a JKS)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A chain that verified, and the window it stays verified in: until a certificate in it crosses a
    validity bound (POSIX seconds)."""

    detail: str  # how it was verified
    valid_from: float
    valid_until: float

    def holds_at(self, stamp: float) -> bool:
        return self.valid_from <= stamp <= self.valid_until


@dataclass(frozen=True, slots=True)
class RecordedStore:
    """The state-dir record of one store, both hex: the SHA-256 of its bytes, and the HMAC of everything
    it must hold (password and profile included)."""

    digest: str
    spec_mac: str


@dataclass(slots=True)
class Derived:
    """What was derived from one parsed object; the object is kept so that its id is not reused."""

    obj: object
    values: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class ReconcileCache:
    _keys: OrderedDict[bytes, PrivateKey] = field(default_factory=OrderedDict, repr=False)
    # artifact path -> the bytes this process last wrote or opened there, and what they hold
    stores: dict[str, KnownStore] = field(default_factory=dict, repr=False)

    # SHA-256 of a certificate file's bytes -> its parsed certificates
    certs: dict[bytes, list[x509.Certificate]] = field(default_factory=dict, repr=False)
    # SHA-256 of a certificate's DER -> OpenSSL subject hash
    subject_hashes: dict[bytes, str] = field(default_factory=dict, repr=False)
    # id of a parsed certificate -> what was derived from it (DER, subject hash, report entry...). Parsed
    # certificates are themselves remembered by content, so a file that did not change hands the same
    # objects back and nothing is derived twice.
    derived: dict[int, Derived] = field(default_factory=dict, repr=False)
    # (chain digest, anchors digest) -> the verdict: a chain that verified stays verified while no
    # certificate in it crosses a validity boundary
    verdicts: dict[tuple[bytes, bytes], Verdict] = field(default_factory=dict, repr=False)
    # the keys of the two tables above this process asked for: only those go into the state-dir record,
    # so it holds what the sources hold now, not every certificate ever seen
    used_verdicts: set[tuple[bytes, bytes]] = field(default_factory=set, repr=False)
    used_subject_hashes: set[bytes] = field(default_factory=set, repr=False)
    # the keys of ``certs``, ``derived`` and ``_keys`` this run asked for: what ``new_run`` keeps
    used_certs: set[bytes] = field(default_factory=set, repr=False)
    used_derived: set[int] = field(default_factory=set, repr=False)
    used_keys: set[bytes] = field(default_factory=set, repr=False)
    # the same five sets as the run before this one asked for them (``new_run``); None before a first run
    asked_before: tuple[set[Any], ...] | None = field(default=None, repr=False)

    # the trust files' stats and facts, proving a file unchanged without reading it (stat_index.py); each
    # reconcile replaces it with its own trust files', so it never holds more than the current ones
    stat_index: StatIndex = field(default_factory=StatIndex, repr=False)
    stat_index_saved: StatIndex | None = field(default=None, repr=False)  # the index as read or last written

    # Kept in the state dir between runs of the one-shot CLI: artifact path -> what it was verified to
    # hold. The HMAC key lives beside it (0600), so the record says nothing about the password to whoever
    # lacks that key.
    recorded: dict[str, RecordedStore] = field(default_factory=dict, repr=False)
    record_key: bytes = field(default=b"", repr=False)
    record_trusted: bool = False  # read from a state dir only this user could write
    record_note: str = ""  # why a record there was not used, for the caller to say
    record_saved: bytes = field(default=b"", repr=False)  # the record as last read or written

    def remember_verified(self, path: str, digest: bytes, spec: bytes) -> None:
        """For the state-dir record: the bytes at ``path`` (SHA-256 ``digest``) hold exactly ``spec``."""
        if self.record_key:
            self.recorded[path] = RecordedStore(digest.hex(), self.spec_mac(spec))

    def spec_mac(self, spec: bytes) -> str:
        return hmac.new(self.record_key, spec, hashlib.sha256).hexdigest() if self.record_key else ""

    def new_run(self) -> None:
        """A reconcile starts: forget what neither of the last two runs asked for, then count asks afresh.

        Each table keeps what the current inputs can use, whatever the process saw before: a rotated CA
        leaves nothing behind (its parse, derived facts, subject hash, and the verdicts keyed by the anchor
        set it was part of). The run before the last is kept too, so a file swapped back (a rollback, a
        flip-flop) is not parsed and verified again. A first run forgets nothing: what a state-dir record
        primed is used, or left out of the next record, by that run. Only tables with entries no asked
        key explains are walked, so a no-op costs a few length checks."""
        asked: tuple[set[Any], ...] = (
            self.used_certs,
            self.used_derived,
            self.used_verdicts,
            self.used_subject_hashes,
            self.used_keys,
        )
        if self.asked_before is not None:
            tables: tuple[dict[Any, Any], ...] = (
                self.certs,
                self.derived,
                self.verdicts,
                self.subject_hashes,
                self._keys,
            )
            for table, now, before in zip(tables, asked, self.asked_before, strict=True):
                if len(table) > len(now) or table is self.verdicts:  # asks are a subset of the table's keys
                    for stale in [k for k in table if k not in now and k not in before]:
                        del table[stale]
        self.asked_before = asked
        self.used_certs, self.used_derived, self.used_verdicts = set(), set(), set()
        self.used_subject_hashes, self.used_keys = set(), set()

    def trim(self) -> None:
        for memo in (self.certs, self.subject_hashes, self.verdicts, self.derived):
            if len(memo) > MAX_CERT_FILES:
                memo.clear()
        for used in (self.used_verdicts, self.used_subject_hashes):
            if len(used) > MAX_CERT_FILES:
                used.clear()

    def key(self, data: bytes) -> PrivateKey | None:
        digest = hashlib.sha256(data).digest()
        key = self._keys.get(digest)
        if key is not None:
            self._keys.move_to_end(digest)
            self.used_keys.add(digest)
        return key

    def remember_key(self, data: bytes, key: PrivateKey) -> None:
        digest = hashlib.sha256(data).digest()
        self._keys[digest] = key
        self.used_keys.add(digest)
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)


def access_digest(kind: str, profile: str, password: str | None) -> bytes:
    """How a store is opened (kind, password, profile), as a digest kept in memory only."""
    return hashlib.sha256(f"{kind}\0{profile}\0{password}".encode()).digest()


def store_spec(kind: str, profile: str, password: str, content: StoreContent) -> bytes:
    """Everything a store must hold and how it is opened, as one digest (never stored as is)."""
    h = hashlib.sha256(access_digest(kind, profile, password))
    for key in content.keys:
        h.update(key.alias.encode() + b"\0" + key.key_der + b"".join(key.chain))
    for alias, der in content.trusted:
        h.update(alias.encode() + b"\0" + der)
    return h.digest()
