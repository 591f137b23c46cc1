"""Our JKS writer (stores/jks_writer.py) against pyjks, the oracle, and against keytool and a JVM.

Byte-for-byte comparison needs the two writers to agree on what pyjks leaves to chance:
- the timestamp: pyjks stamps each entry with ``int(time.time()) * 1000`` when the entry is made; the
  oracle sets every entry's (public) ``timestamp`` to one value and our writer is given the same value;
- the key protector's 20-byte salt, which pyjks draws from ``os.urandom``: the oracle's store is written
  first, the salt each key entry got is read back out of it (the first 20 bytes of the encrypted key),
  and our writer is handed those salts. Nothing in pyjks is patched; the whole file is compared,
  key entries included.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import jks
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from javakit import store_probe
from pyasn1.codec.der import decoder
from pyasn1_modules import rfc5208

from sslreconciler.stores.entries import KeyEntry, StoreContent
from sslreconciler.stores.jks import encode_jks, read_jks
from sslreconciler.stores.jks_writer import JKSEncodeError, encode_jks_with

from conftest import keytool_list, soak_size
from pkitools import Issued, make_ca, make_host

# A small pool of real keys and certificates, made once; the property test picks from it.
_CA = make_ca("ca.writer.example.com")
_EC_CA = make_ca("ca.writer-ec.example.com", kind="ec")
_HOSTS = [make_host(_CA, "rsa.example.com"), make_host(_EC_CA, "ec.example.com", kind="ec")]
_CERTS = [_CA.cert_der(), _EC_CA.cert_der(), *(h.cert_der() for h in _HOSTS)]


def _key_entry(alias: str, host: Issued, ca: Issued) -> KeyEntry:
    return KeyEntry(alias, host.key_der(), (host.cert_der(), ca.cert_der()))


def pyjks_saves(content: StoreContent, password: str, timestamp_ms: int) -> bytes:
    """What pyjks itself writes for these entries (its own ``KeyStore.saves``), every entry at one time."""
    entries = [jks.PrivateKeyEntry.new(k.alias, list(k.chain), k.key_der, "pkcs8") for k in content.keys]
    entries += [jks.TrustedCertEntry.new(alias, der) for alias, der in content.trusted]
    for entry in entries:
        entry.timestamp = timestamp_ms
    return jks.KeyStore.new("jks", entries).saves(password)


def salts_in(store: bytes, password: str, content: StoreContent) -> list[bytes]:
    """The key protector salt of each key entry of a JKS file, in ``content``'s key order."""
    loaded = jks.KeyStore.loads(store, password, try_decrypt_keys=False)
    salts = []
    for key in content.keys:
        encrypted = loaded.entries[key.alias.lower()]._encrypted
        info = decoder.decode(encrypted, asn1Spec=rfc5208.EncryptedPrivateKeyInfo())[0]
        salts.append(info["encryptedData"].asOctets()[:20])
    return salts


def ours_like(oracle: bytes, content: StoreContent, password: str, timestamp_ms: int) -> bytes:
    salts = iter(salts_in(oracle, password, content))
    return encode_jks_with(content, password, timestamp_ms=timestamp_ms, salt=lambda n: next(salts))


# Passwords: any text but lone surrogates (which neither UTF-8 nor UTF-16 can encode). Aliases: the same
# but where pyjks is wrong and the writer follows Java (tests/test_jks_aliases.py): no capital sigma (Java's
# final-sigma rule), no NUL and nothing outside the BMP (Java's modified UTF-8).
_text = st.characters(blacklist_categories=("Cs",))
_aliases = st.text(st.characters(blacklist_categories=("Cs",), max_codepoint=0xFFFF, blacklist_characters="\0\u03a3"),
                   min_size=1, max_size=24)


@st.composite
def stores(draw: st.DrawFn) -> StoreContent:
    n_keys = draw(st.integers(0, 2))
    n_trusted = draw(st.integers(0, 12))
    aliases = draw(st.lists(_aliases, min_size=n_keys + n_trusted, max_size=n_keys + n_trusted,
                            unique_by=lambda a: a.lower()))
    keys = []
    for alias in aliases[:n_keys]:
        which = draw(st.integers(0, 1))
        keys.append(_key_entry(alias, _HOSTS[which], (_CA, _EC_CA)[which]))
    trusted = {alias: draw(st.sampled_from(_CERTS)) for alias in aliases[n_keys:]}
    return StoreContent.of(keys, trusted)


@settings(max_examples=soak_size(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=stores(), password=st.text(_text, max_size=20), timestamp_ms=st.integers(0, 2**63 - 1))
def test_byte_identical_to_pyjks(content: StoreContent, password: str, timestamp_ms: int) -> None:
    oracle = pyjks_saves(content, password, timestamp_ms)
    assert ours_like(oracle, content, password, timestamp_ms) == oracle


def test_a_different_salt_or_time_is_seen() -> None:
    """The comparison above can fail: one salt byte or one millisecond off and the files differ."""
    content = StoreContent.of([_key_entry("ssl", _HOSTS[0], _CA)], {"ca": _CERTS[0]})
    oracle = pyjks_saves(content, "changeit", 1_700_000_000_000)
    assert ours_like(oracle, content, "changeit", 1_700_000_000_000) == oracle
    assert ours_like(oracle, content, "changeit", 1_700_000_000_001) != oracle
    (salt,) = salts_in(oracle, "changeit", content)
    other = bytes([salt[0] ^ 1]) + salt[1:]
    assert encode_jks_with(content, "changeit", timestamp_ms=1_700_000_000_000, salt=lambda n: other) != oracle


def test_the_real_clock_and_salt() -> None:
    """encode_jks as the product calls it: whole-second stamps like pyjks, a fresh salt per key and per call."""
    content = StoreContent.of([_key_entry("ssl", _HOSTS[0], _CA), _key_entry("web", _HOSTS[1], _EC_CA)],
                              {"ca.writer.example.com": _CERTS[0]})
    before = int(time.time()) * 1000
    first, second = encode_jks(content, "changeit"), encode_jks(content, "changeit")
    after = int(time.time()) * 1000
    loaded = jks.KeyStore.loads(first, "changeit")
    stamps = {entry.timestamp for entry in loaded.entries.values()}
    assert len(stamps) == 1 and before <= stamps.pop() <= after
    assert first != second  # salts are random
    salts = salts_in(first, "changeit", content) + salts_in(second, "changeit", content)
    assert len(set(salts)) == 4
    assert read_jks(first, "changeit") == read_jks(second, "changeit") == content


@settings(max_examples=soak_size(100), deadline=None)
@given(content=stores(), password=st.text(_text, max_size=20))
def test_pyjks_reads_back_the_same_entries(content: StoreContent, password: str) -> None:
    data = encode_jks(content, password)
    loaded = jks.KeyStore.loads(data, password)
    assert set(loaded.entries) == {k.alias.lower() for k in content.keys} | {a.lower() for a, _ in content.trusted}
    for key in content.keys:
        entry = loaded.entries[key.alias.lower()]
        assert isinstance(entry, jks.PrivateKeyEntry) and entry.is_decrypted()
        assert entry.pkey_pkcs8 == key.key_der
        assert tuple(c for _, c in entry.cert_chain) == key.chain
    for alias, der in content.trusted:
        entry = loaded.entries[alias.lower()]
        assert isinstance(entry, jks.TrustedCertEntry) and entry.cert == der and entry.type == "X.509"


def test_an_alias_clash_is_refused_as_pyjks_refuses_it() -> None:
    content = StoreContent.of(trusted={"CA": _CERTS[0], "ca": _CERTS[1]})
    with pytest.raises(jks.DuplicateAliasException):
        pyjks_saves(content, "changeit", 0)
    with pytest.raises(JKSEncodeError, match="'ca'"):
        encode_jks(content, "changeit")


def test_keytool_opens_a_truststore(tmp_path: Path) -> None:
    trusted = {f"ca{i}.example.com": der for i, der in enumerate(_CERTS)} | {"Wéb-Ü.example.com": _CERTS[0]}
    store = tmp_path / "authorities.jks"
    store.write_bytes(encode_jks(StoreContent.of(trusted=trusted), "changeit"))
    listed = keytool_list(store)
    assert {alias for alias in listed if alias.isascii()} == {a for a in trusted if a.isascii()}
    assert len(listed) == len(trusted)
    assert {kind for kind, _ in listed.values()} == {"trustedCertEntry"}


def test_keytool_and_java_open_a_keystore(tmp_path: Path, java_classes: Path) -> None:
    password = "chänge€it"  # keytool takes it as UTF-16 code units, as the writer does
    content = StoreContent.of([_key_entry("ssl", _HOSTS[0], _CA), _key_entry("ssl-web", _HOSTS[1], _EC_CA)],
                              {"ca.writer.example.com": _CERTS[0]})
    store = tmp_path / "ssl.keystore"
    store.write_bytes(encode_jks(content, password))
    assert keytool_list(store, password) == {
        "ssl": ("PrivateKeyEntry", 2), "ssl-web": ("PrivateKeyEntry", 2), "ca.writer.example.com": ("trustedCertEntry", 1),
    }
    probe = store_probe(java_classes, "system", "JKS", store, password)  # getKey: the key password works
    assert probe.rc == 0, probe.out + probe.err
    assert sorted(probe.out.split("\n")[:-1]) == ["ca.writer.example.com\ttrusted\t1", "ssl\tkey\t2", "ssl-web\tkey\t2"]
    wrong = subprocess.run(["keytool", "-list", "-keystore", str(store), "-storepass", "changeit"],
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode != 0 and "password was incorrect" in wrong.stdout + wrong.stderr
