"""What a store holds, as plain comparable values: the unit of "does this store need rewriting?".

Two encodings of the same entries differ byte for byte (salts, timestamps), so stores are compared
by these values, never by bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.pki.sources import PrivateKey


class StoreUnreadable(SslReconcilerError):
    """A store on disk cannot be opened with the desired password, or is not a store at all."""


def key_pkcs8(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    alias: str
    key_der: bytes = field(repr=False)  # unencrypted PKCS#8: secret, never printed
    chain: tuple[bytes, ...]  # DER, leaf first


@dataclass(frozen=True, slots=True)
class StoreContent:
    """The entries of one store. Trusted certificates are kept sorted by alias."""

    keys: tuple[KeyEntry, ...] = ()
    trusted: tuple[tuple[str, bytes], ...] = ()

    @staticmethod
    def of(keys: list[KeyEntry] | None = None, trusted: dict[str, bytes] | None = None) -> StoreContent:
        return StoreContent(tuple(sorted(keys or [], key=lambda k: k.alias)), tuple(sorted((trusted or {}).items())))

    def describe(self) -> str:
        parts = [f"key entry {k.alias!r} (chain of {len(k.chain)})" for k in self.keys]
        if self.trusted:
            parts.append(f"{len(self.trusted)} trusted certificates")
        return ", ".join(parts) or "no entries"

    def differences(self, other: StoreContent) -> str:
        """Why ``other`` (what is on disk) is not this (what should be): a short phrase, secret-free."""
        mine, theirs = {k.alias: k for k in self.keys}, {k.alias: k for k in other.keys}
        if mine.keys() != theirs.keys():
            return f"key aliases {sorted(theirs)} should be {sorted(mine)}"
        for alias, entry in mine.items():
            if entry.key_der != theirs[alias].key_der:
                return f"private key of {alias!r} differs"
            if entry.chain != theirs[alias].chain:
                return f"certificate chain of {alias!r} differs"
        want, have = dict(self.trusted), dict(other.trusted)
        if want.keys() != have.keys():
            added, removed = sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys())
            bits = ([f"add {', '.join(added[:5])}"] if added else []) + (
                [f"remove {', '.join(removed[:5])}"] if removed else []
            )
            return "trusted certificates: " + "; ".join(bits)
        changed = sorted(a for a in want if want[a] != have[a])
        if changed:
            return f"trusted certificate {', '.join(changed[:5])} differs"
        return ""
