"""JKS keystores and truststores: written by our own writer (jks_writer), read by pyjks.

Key password = store password, as sipXecs expects. Strings in the file (aliases, the certificate type)
are read as Java reads them (modified UTF-8, DataInputStream.readUTF), not as pyjks does (standard
UTF-8): a store Java wrote with a NUL or a character outside the BMP in an alias is read as Java reads
it, and one Java cannot load (a four-byte UTF-8 sequence, as pyjks and this project's writer before
issue 24 wrote) is unreadable, so it is rewritten.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.jks_alias import read_modified_utf8
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
        store = _as_java_reads().loads(data, password)
    except _JavaCannotRead as exc:
        raise StoreUnreadable(str(exc)) from None
    except Exception as exc:  # pyjks raises a zoo of types (struct.error, KeystoreSignatureException...)
        raise StoreUnreadable(type(exc).__name__) from None
    if store.store_type != "jks":
        raise StoreUnreadable(f"a {store.store_type} store, not JKS")
    keys: list[KeyEntry] = []
    trusted: dict[str, bytes] = {}
    for alias, entry in store.entries.items():
        if not _encodable(alias):
            raise StoreUnreadable("an alias holds a lone surrogate")
        if isinstance(entry, jks.PrivateKeyEntry):
            if not entry.is_decrypted():
                raise StoreUnreadable(f"key entry {alias!r} uses another password")
            keys.append(KeyEntry(alias, bytes(entry.pkey_pkcs8), tuple(bytes(c[1]) for c in entry.cert_chain)))
        elif isinstance(entry, jks.TrustedCertEntry):
            trusted[alias] = bytes(entry.cert)
        else:
            raise StoreUnreadable(f"unexpected entry {alias!r}")
    return StoreContent.of(keys, trusted)


class _JavaCannotRead(SslReconcilerError, ValueError):
    """A string in the store that Java's readUTF refuses (UTFDataFormatException)."""


def _encodable(alias: str) -> bool:
    try:
        alias.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@functools.cache
def _as_java_reads() -> Any:
    """pyjks's KeyStore, its strings read as Java's readUTF reads them."""
    import jks

    class JavaKeyStore(jks.KeyStore):  # type: ignore[misc]
        @classmethod
        def _read_utf(cls, data: bytes, pos: int, kind: str | None = None) -> tuple[str, int]:
            size = int.from_bytes(data[pos : pos + 2], "big")
            raw = data[pos + 2 : pos + 2 + size]
            if len(raw) != size:
                raise jks.BadKeystoreFormatException(f"{kind or 'a string'} runs past the end")
            try:
                return read_modified_utf8(raw), pos + 2 + size
            except ValueError as exc:
                raise _JavaCannotRead(f"{kind or 'a string'}: {exc}, which Java cannot read") from None

    return JavaKeyStore
