"""A minimal DER reader: just enough to walk names and PKCS#12 MAC data.

cryptography exposes neither OpenSSL's subject hash nor a PKCS#12 file's MAC algorithm, and both
need only a few fixed paths through well-formed DER, so a forty-line walker earns its place.
"""

from __future__ import annotations

from dataclasses import dataclass

from sslreconciler.model.errors import SslReconcilerError

SEQUENCE = 0x30
SET = 0x31
OID = 0x06
INTEGER = 0x02
OCTET_STRING = 0x04


class DERError(SslReconcilerError, ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TLV:
    tag: int
    value: bytes
    raw: bytes  # the whole element, header included

    def children(self) -> list[TLV]:
        return parse_all(self.value)


def parse_one(data: bytes, offset: int = 0) -> tuple[TLV, int]:
    """The element at ``offset`` and the offset after it."""
    if offset + 2 > len(data):
        raise DERError("truncated header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DERError("high tag numbers are not used here")
    length = data[offset + 1]
    pos = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DERError("truncated value")
    return TLV(tag, data[pos:end], data[offset:end]), end


def parse_all(data: bytes) -> list[TLV]:
    out: list[TLV] = []
    pos = 0
    while pos < len(data):
        item, pos = parse_one(data, pos)
        out.append(item)
    return out


def encode(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        header = bytes([tag, n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        header = bytes([tag, 0x80 | len(size)]) + size
    return header + value


def decode_oid(value: bytes) -> str:
    if not value:
        raise DERError("empty OID")
    first = value[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    acc = 0
    for byte in value[1:]:
        acc = (acc << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(acc)
            acc = 0
    return ".".join(str(p) for p in parts)
