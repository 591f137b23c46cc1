"""Memory a long-running process keeps between reconciles, so a no-op stays cheap.

Parsing an RSA key validates it (tens of milliseconds) and opening a PKCS#12 file derives keys from
the password (tens of milliseconds per store). Neither needs doing again for bytes already seen: keys
are remembered by the SHA-256 of their source bytes, and a store whose bytes are exactly what this
process last wrote or opened, with the same password and profile, holds what it held then.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections import OrderedDict
from collections.abc import Callable, Hashable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from sslreconciler.pki.sources import PrivateKey
from sslreconciler.stores.entries import StoreContent

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_KEYS = 64
RECORD, RECORD_KEY = "fingerprints.json", "fingerprints.key"
MAX_CERT_FILES = 50_000  # past this the memo starts over rather than grow without bound
MAX_RECORD_BYTES = 4 * 1024 * 1024


def _untrusted(st: os.stat_result, what: str) -> str:
    """Why a state-dir entry could have been written by someone else than this user; empty if not."""
    me = os.geteuid()
    if st.st_uid != me:
        return f"{what} is owned by uid {st.st_uid}, not by this user (uid {me})"
    if st.st_mode & 0o022:
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


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

    # Kept in the state dir between runs of the one-shot CLI: artifact path -> (SHA-256 of its bytes,
    # HMAC of everything it must hold, password and profile included). The HMAC key lives beside it
    # (0600), so the record says nothing about the password to whoever lacks that key.
    recorded: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)
    record_key: bytes = field(default=b"", repr=False)
    record_trusted: bool = False  # read from a state dir only this user could write
    record_note: str = ""  # why a record there was not used, for the caller to say

    def spec_mac(self, spec: bytes) -> str:
        return hmac.new(self.record_key, spec, hashlib.sha256).hexdigest() if self.record_key else ""

    @staticmethod
    def with_record(state_dir: Path) -> ReconcileCache:
        """A cache primed from the state dir's record; an unreadable or untrusted record is not used.

        The record vouches for what stores hold, so it is only believed when nobody but the running
        user could have written it: root never trusts a record in a directory the service user owns.
        """
        from sslreconciler.fsio import open_dir, read_at
        from sslreconciler.model.findings import SourceError

        cache = ReconcileCache()
        cache.record_key = secrets.token_bytes(32)  # saved with the first record
        try:
            fd = open_dir(state_dir)
        except OSError:
            return cache
        try:
            problem = _untrusted(os.fstat(fd), f"state dir {state_dir}")
            if problem:
                cache.record_note = f"{problem}; its record is ignored"
                return cache
            try:
                key, key_st = read_at(fd, RECORD_KEY, RECORD_KEY, None, 4096)
                raw, raw_st = read_at(fd, RECORD, RECORD, None, MAX_RECORD_BYTES)
            except SourceError as exc:
                if exc.finding.code not in ("missing", "empty"):
                    cache.record_note = f"{state_dir}/{exc.finding.file} {exc.finding.reason}; record ignored"
                return cache
            problem = _untrusted(key_st, f"{state_dir}/{RECORD_KEY}") or _untrusted(raw_st, f"{state_dir}/{RECORD}")
            if problem:
                cache.record_note = f"{problem}; the record is ignored"
                return cache
            cache.record_key = key
            try:
                loaded = json.loads(raw)
                cache.recorded = {str(k): (str(v[0]), str(v[1])) for k, v in loaded.items()}
            except (ValueError, TypeError, IndexError, AttributeError, RecursionError):
                cache.recorded = {}
            cache.record_trusted = True
        finally:
            os.close(fd)
        return cache

    def save_record(self, state_dir: Path) -> None:
        from sslreconciler.fsio import atomic_write_at, opened_dir

        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.record_key:
            return
        with opened_dir(state_dir) as fd:  # inside the directory's descriptor, never through a link
            if not self.record_trusted:  # a new key for a new record: the old pair is not believed
                atomic_write_at(fd, RECORD_KEY, self.record_key, 0o600)
            atomic_write_at(fd, RECORD, json.dumps(self.recorded, indent=1).encode(), 0o600)
            self.record_trusted = True

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


def memoised(table: MutableMapping[K, V] | None, key: K, compute: Callable[[], V]) -> V:
    """``compute()`` once per ``key`` when there is a table; every time when there is none.

    A computation that raises is not remembered, so a bad source is looked at afresh each time.
    """
    if table is None:
        return compute()
    try:
        return table[key]
    except KeyError:
        value = table[key] = compute()
        return value
