"""JKS keystores and truststores: written by our own writer (jks_writer), read by pyjks.

Key password = store password, as sipXecs expects.
"""

from __future__ import annotations

import hashlib

from sslreconciler.stores.entries import KeyEntry, StoreContent, StoreUnreadable
from sslreconciler.stores.jks_writer import encode_jks

__all__ = ["encode_jks", "read_jks"]


def read_jks(data: bytes, password: str) -> StoreContent:
    """The entries of a JKS file, or StoreUnreadable (corrupt, truncated, wrong password, not JKS)."""
    # The keyed SHA-1 must be the file's last 20 bytes: pyjks would ignore bytes appended after it.
    body, mac = data[:-20], data[-20:]
    if len(data) < 32 or hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest() != mac:
        raise StoreUnreadable("integrity check failed (wrong password, or tampered)")
    import jks  # pyjks: ~90 ms of imports, paid only when an existing store must be read

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
