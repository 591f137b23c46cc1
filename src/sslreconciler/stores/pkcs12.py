"""PKCS#12 files via cryptography, in a ``modern`` and a ``legacy`` profile.

modern: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), HMAC-SHA256 MAC: what current JDKs write.
legacy: PBE-SHA1-3DES, HMAC-SHA1 MAC: what Java before 8u301 / 11.0.12 can open.
"""

from __future__ import annotations

import warnings
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from sslreconciler.pki import der
from sslreconciler.stores.entries import KeyEntry, StoreContent, StoreUnreadable, cert_der, key_pkcs8

Profile = Literal["modern", "legacy"]
ITERATIONS = 10_000  # what current JDKs use for PKCS#12 key derivation and MAC
_MAC_OIDS: dict[str, Profile] = {"2.16.840.1.101.3.4.2.1": "modern", "1.3.14.3.2.26": "legacy"}


def _encryption(password: str, profile: Profile) -> serialization.KeySerializationEncryption:
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(ITERATIONS)
    if profile == "modern":
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    else:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
    return builder.build(password.encode())


def encode_pkcs12(entry: KeyEntry, password: str, profile: Profile) -> bytes:
    # The entry's key was checked when its source was parsed; skip OpenSSL's slow RSA re-check.
    key = serialization.load_der_private_key(entry.key_der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError("only RSA and EC keys are stored")
    leaf, *rest = (x509.load_der_x509_certificate(c) for c in entry.chain)
    return pkcs12.serialize_key_and_certificates(
        entry.alias.encode(),
        key,
        leaf,
        rest or None,
        _encryption(password, profile),
    )


def mac_profile(data: bytes) -> Profile | None:
    """The profile a PKCS#12 file's MAC algorithm belongs to (None: neither)."""
    try:
        pfx, _ = der.parse_one(data)
        mac_data = pfx.children()[2].children()
        algorithm = mac_data[0].children()[0].children()[0]
        return _MAC_OIDS.get(der.decode_oid(algorithm.value))
    except (der.DERError, IndexError):
        return None


def read_pkcs12(data: bytes, password: str) -> tuple[StoreContent, Profile | None]:
    """The entries of a PKCS#12 file and its profile, or StoreUnreadable."""
    try:
        _, end = der.parse_one(data)
    except der.DERError:
        raise StoreUnreadable("not DER") from None
    if end != len(data):
        raise StoreUnreadable("bytes after the PKCS#12 structure")  # tampered; cryptography would let it pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a BER fallback is not what this program writes
            loaded = pkcs12.load_pkcs12(data, password.encode())
    except Exception as exc:  # ValueError for a bad MAC or garbage; be total here
        raise StoreUnreadable(type(exc).__name__) from None
    if loaded.key is None or loaded.cert is None:
        raise StoreUnreadable("no key entry")
    alias = (loaded.cert.friendly_name or b"").decode(errors="replace")
    chain = (cert_der(loaded.cert.certificate), *(cert_der(c.certificate) for c in loaded.additional_certs))
    key = loaded.key
    if not hasattr(key, "private_bytes"):
        raise StoreUnreadable("unsupported key")
    entry = KeyEntry(alias, key_pkcs8(key), chain)  # type: ignore[arg-type]
    return StoreContent.of([entry]), mac_profile(data)
