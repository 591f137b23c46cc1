"""JKS keystores and truststores via pyjks. Key password = store password, as sipXecs expects."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import jks

from sslreconciler.stores.entries import KeyEntry, StoreContent, StoreUnreadable


def encode_jks(content: StoreContent, password: str) -> bytes:
    entries: list[Any] = []
    for key in content.keys:
        entry = jks.PrivateKeyEntry.new(key.alias, list(key.chain), key.key_der, "pkcs8")
        entry.encrypt(password)
        entries.append(entry)
    entries.extend(jks.TrustedCertEntry.new(alias, der) for alias, der in content.trusted)
    store = jks.KeyStore.new("jks", entries)
    return _saves(store, password)


def _saves(store: Any, password: str) -> bytes:
    """pyjks's KeyStore.saves, joined once instead of grown by ``+=`` (quadratic: 8 s for 10,000 certs).

    The entries are still encoded by pyjks; only the framing (magic, version, count, keyed SHA-1)
    is written here, exactly as ``saves`` writes it.
    """
    parts = [struct.pack(">LLL", 0xFEEDFEED, 2, len(store.entries))]
    for alias, item in store.entries.items():
        if isinstance(item, jks.TrustedCertEntry):
            parts.append(store._write_trusted_cert(alias, item))
        else:
            parts.append(store._write_private_key(alias, item, password))
    body = b"".join(parts)
    return body + hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()


def read_jks(data: bytes, password: str) -> StoreContent:
    """The entries of a JKS file, or StoreUnreadable (corrupt, truncated, wrong password, not JKS)."""
    # The keyed SHA-1 must be the file's last 20 bytes: pyjks would ignore bytes appended after it.
    body, mac = data[:-20], data[-20:]
    if len(data) < 32 or hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest() != mac:
        raise StoreUnreadable("integrity check failed (wrong password, or tampered)")
    try:
        store = jks.KeyStore.loads(data, password)
    except Exception as exc:  # pyjks raises a zoo of types (struct.error, KeystoreSignatureException...)
        raise StoreUnreadable(type(exc).__name__) from None
    if store.store_type != "jks":
        raise StoreUnreadable(f"a {store.store_type} store, not JKS")
    keys: list[KeyEntry] = []
    trusted: dict[str, bytes] = {}
    for alias, entry in store.entries.items():
        if isinstance(entry, jks.PrivateKeyEntry):
            if not entry.is_decrypted():
                raise StoreUnreadable(f"key entry {alias!r} uses another password")
            keys.append(KeyEntry(alias, bytes(entry.pkey_pkcs8), tuple(bytes(c[1]) for c in entry.cert_chain)))
        elif isinstance(entry, jks.TrustedCertEntry):
            trusted[alias] = bytes(entry.cert)
        else:
            raise StoreUnreadable(f"unexpected entry {alias!r}")
    return StoreContent.of(keys, trusted)
