"""OpenSSL's subject hash (``X509_NAME_hash``), the name of ``c_rehash``'s ``<hash>.0`` links.

The hash is the first four bytes, little-endian, of SHA-1 over the name's canonical encoding: each
string value converted to UTF-8, ASCII-lowercased, trimmed, inner whitespace runs folded to one
space, re-tagged UTF8String; the RDN sets concatenated without the outer SEQUENCE header.
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509

from sslreconciler.pki import der

# ASN.1 string tags OpenSSL canonicalises (ASN1_MASK_CANON) and how to decode each.
_CANON_CODECS = {
    12: "utf-8",  # UTF8String
    19: "latin-1",  # PrintableString
    20: "latin-1",  # T61String (OpenSSL reads it as Latin-1)
    22: "latin-1",  # IA5String
    26: "latin-1",  # VisibleString
    28: "utf-32-be",  # UniversalString
    30: "utf-16-be",  # BMPString
}
_UTF8STRING = 12
_SPACES = re.compile(rb"[ \t\n\v\f\r]+")


def _canonical_value(tlv: der.TLV) -> bytes:
    codec = _CANON_CODECS.get(tlv.tag)
    if codec is None:
        return tlv.raw
    text = tlv.value.decode(codec, errors="replace").encode("utf-8")
    text = _SPACES.sub(b" ", text.strip(b" \t\n\v\f\r"))
    lowered = bytes(c + 32 if 65 <= c <= 90 else c for c in text)
    return der.encode(_UTF8STRING, lowered)


def _canonical_name(name_der: bytes) -> bytes:
    name, _ = der.parse_one(name_der)
    out = bytearray()
    for rdn in name.children():
        attrs = []
        for atv in rdn.children():
            oid, value = atv.children()
            attrs.append(der.encode(der.SEQUENCE, oid.raw + _canonical_value(value)))
        out += der.encode(der.SET, b"".join(sorted(attrs)))  # DER orders SET OF by encoding
    return bytes(out)


def subject_hash(cert: x509.Certificate) -> str:
    """The eight hex digits ``openssl x509 -hash`` prints for ``cert``."""
    digest = hashlib.sha1(_canonical_name(cert.subject.public_bytes())).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"
