"""A JKS writer of our own, byte-identical to pyjks 20's ``KeyStore.saves`` for the same entries.

Why not pyjks: importing it costs ~90 ms (pyasn1, javaobj) and its writer grows the file with ``+=``.
Here every entry is framed from precomputed parts and the file is one ``b"".join``. pyjks stays the
reader of existing stores and, in tests, the oracle this writer is compared with byte for byte.

What pyjks writes, and so what this writes: magic 0xFEEDFEED, version 2, the entry count; key entries
first, then trusted certificates, each in the order given; aliases lower-cased and length-prefixed;
every entry stamped with the same whole second in milliseconds (pyjks takes
``int(time.time()) * 1000`` per entry); key entries protected with Sun's JKS KeyProtector (a fresh random
20-byte salt per key, SHA-1 keystream XOR, SHA-1 check) under the store password; certificate type
"X.509"; last the keyed SHA-1 over UTF-16BE(password) + "Mighty Aphrodite" + everything before it.

Where pyjks is wrong, this writes what Java writes (model/jks_alias.py): aliases lower-cased as
``String.toLowerCase(Locale.ENGLISH)`` (not ``str.lower``: a capital sigma inside a Java "word", as in
``SIGMA-ALPHA-SIGMA-ca`` written in Greek, stays a medial sigma) and encoded as Java's modified UTF-8
(``writeUTF``: NUL as C0 80, a character outside the BMP as two three-byte surrogates; pyjks's standard
UTF-8 there gives a store no Java can load). For every other alias the bytes are pyjks's.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable, Iterator

from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.jks_alias import MAX_ALIAS_BYTES, java_lower, modified_utf8
from sslreconciler.stores.entries import StoreContent

_HEADER = struct.Struct(">LLL")  # magic, version, entry count
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">L")
_U64 = struct.Struct(">Q")
_MAGIC, _VERSION = 0xFEEDFEED, 2
_TAG_KEY = _U32.pack(1)
_TAG_TRUSTED = _U32.pack(2)
_X509 = _U16.pack(5) + b"X.509"  # the certificate type, as _write_utf writes it
_WHITENING = b"Mighty Aphrodite"
# AlgorithmIdentifier { 1.3.6.1.4.1.42.2.17.1.1 (Sun JKS KeyProtector), NULL }, DER
_KEY_PROTECTOR_ALGORITHM = bytes.fromhex("300e060a2b060104012a021101010500")
_SALT_BYTES = 20


class JKSEncodeError(SslReconcilerError, ValueError):
    """The entries cannot be written as a JKS store (an alias clash or an alias too long)."""


def encode_jks(content: StoreContent, password: str) -> bytes:
    """The JKS store holding ``content``, keys protected with ``password`` (as pyjks would write it)."""
    return encode_jks_with(content, password, timestamp_ms=int(time.time()) * 1000, salt=os.urandom)


def encode_jks_with(content: StoreContent, password: str, *, timestamp_ms: int, salt: Callable[[int], bytes]) -> bytes:
    """encode_jks with the clock and the key-protector salt given: the test oracle's seam.

    ``salt(20)`` is called once per key entry, in entry order; pyjks draws it from ``os.urandom``.
    """
    password_utf16 = password.encode("utf-16-be")
    stamp = _U64.pack(timestamp_ms)
    seen: set[str] = set()
    parts = [_HEADER.pack(_MAGIC, _VERSION, len(content.keys) + len(content.trusted))]
    append = parts.append
    for key in content.keys:
        append(_TAG_KEY)
        append(_alias(key.alias, seen))
        append(stamp)
        protected = _protected_key(key.key_der, password_utf16, salt(_SALT_BYTES))
        append(_U32.pack(len(protected)))
        append(protected)
        append(_U32.pack(len(key.chain)))
        for der in key.chain:
            append(_X509)
            append(_U32.pack(len(der)))
            append(der)
    trusted_tail = stamp + _X509
    pack_u16, pack_u32 = _U16.pack, _U32.pack
    for alias, der in content.trusted:  # the hot loop: 10,000 entries in a big truststore
        lowered = java_lower(alias)
        name = modified_utf8(lowered)
        if lowered in seen or len(name) > MAX_ALIAS_BYTES:
            _alias(alias, seen)  # raises, naming the problem
        seen.add(lowered)
        append(_TAG_TRUSTED + pack_u16(len(name)) + name + trusted_tail + pack_u32(len(der)))
        append(der)
    body = b"".join(parts)
    mac = hashlib.sha1(password_utf16 + _WHITENING)
    mac.update(body)
    return body + mac.digest()


def _alias(alias: str, seen: set[str]) -> bytes:
    """The alias as written (lower-cased as Java does, length-prefixed modified UTF-8); a clash is refused
    as pyjks refuses it."""
    lowered = java_lower(alias)
    if lowered in seen:
        raise JKSEncodeError(f"two entries share the alias {lowered!r}")
    seen.add(lowered)
    encoded = modified_utf8(lowered)
    if len(encoded) > MAX_ALIAS_BYTES:
        raise JKSEncodeError(f"alias {lowered[:40]!r}... is longer than {MAX_ALIAS_BYTES} bytes")
    return _U16.pack(len(encoded)) + encoded


def _protected_key(pkcs8: bytes, password_utf16: bytes, salt: bytes) -> bytes:
    """EncryptedPrivateKeyInfo (DER) of Sun's JKS KeyProtector: salt || key XOR keystream || SHA-1 check."""
    if len(salt) != _SALT_BYTES:
        raise ValueError(f"the key protector salt must be {_SALT_BYTES} bytes")
    stream = b"".join(_keystream(salt, password_utf16, len(pkcs8)))[: len(pkcs8)]
    masked = (int.from_bytes(pkcs8, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(pkcs8), "big")
    check = hashlib.sha1(password_utf16 + pkcs8).digest()
    encrypted = salt + masked + check
    body = _KEY_PROTECTOR_ALGORITHM + b"\x04" + _der_length(len(encrypted)) + encrypted
    return b"\x30" + _der_length(len(body)) + body


def _keystream(salt: bytes, password_utf16: bytes, length: int) -> Iterator[bytes]:
    """SHA-1 chain: d1 = SHA1(password || salt), d(n+1) = SHA1(password || dn), until ``length`` bytes."""
    digest = salt
    for _ in range((length + 19) // 20):
        digest = hashlib.sha1(password_utf16 + digest).digest()
        yield digest


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw
