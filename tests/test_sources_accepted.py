"""Source formats real admins produce are accepted, and the web-certificate trust rules hold."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import keytool_list, openssl, reconcile
from pkitools import Issued, make_ca, make_host, seed_node, write


@pytest.fixture
def fresh(tmp_path: Path, ca: Issued):
    return seed_node(tmp_path / "n", "master.example.com", ca)


def _codes(result) -> list[str]:
    return sorted(f["code"] for f in result.json()["findings"])


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_pkcs1_sec1_and_text_before_the_block(fresh, kind: str, ec_ca: Issued, ca: Issued) -> None:
    issuer = ec_ca if kind == "ec" else ca
    node = seed_node(fresh.root.parent / f"k-{kind}", "master.example.com", issuer, kind=kind)
    traditional = node.ssl.key_pem("pkcs1")
    assert (b"EC PRIVATE KEY" if kind == "ec" else b"RSA PRIVATE KEY") in traditional
    (node.ssl_dir / "ssl.key").write_bytes(b"Bag Attributes\n  friendlyName: ssl\nsome text\n" + traditional)
    (node.ssl_dir / "ssl.crt").write_bytes(b"subject=CN=master.example.com\n" + node.ssl.cert_pem())
    result = reconcile(node)
    assert result.rc == 0 and _codes(result) == [], result.out
    assert keytool_list(node.ssl_dir / "ssl.keystore") == {"ssl": ("PrivateKeyEntry", 1)}


def test_der_key_and_certificate(fresh) -> None:
    (fresh.ssl_dir / "ssl.key").write_bytes(fresh.ssl.key_der())
    (fresh.ssl_dir / "ssl.crt").write_bytes(fresh.ssl.cert_der())
    result = reconcile(fresh)
    assert result.rc == 0, result.out


def test_chain_out_of_order_is_put_in_order(tmp_path: Path, ca: Issued) -> None:
    inter = make_ca("intermediate.example.com", issuer=ca)
    node = seed_node(tmp_path / "n", "master.example.com", ca, intermediate=inter)
    unrelated = make_ca("unrelated.example.com")
    (node.ssl_dir / "ssl.crt").write_bytes(inter.cert_pem() + unrelated.cert_pem() + node.ssl.cert_pem())
    result = reconcile(node)
    assert result.rc == 0, result.out
    assert _codes(result) == ["extra-certificate"]
    assert keytool_list(node.ssl_dir / "ssl.keystore") == {"ssl": ("PrivateKeyEntry", 2)}
    chain = openssl("pkcs12", "-in", node.ssl_dir / "ssl.p12", "-passin", "pass:changeit", "-nokeys").stdout
    subjects = [line for line in chain.splitlines() if line.startswith("subject=")]
    assert subjects == ["subject=CN = master.example.com", "subject=CN = intermediate.example.com"]


def test_certificates_from_old_tools_without_extensions(tmp_path: Path) -> None:
    """openssl x509 -req without extensions: v1 CA and v1 host certificate, as old gen-ssl-keys.sh made."""
    work = tmp_path / "old"
    work.mkdir()
    ssl_dir = tmp_path / "n" / "ssl"
    (ssl_dir / "authorities").mkdir(parents=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True, timeout=60)

    run("genrsa", "-traditional", "-out", "ca.key", "2048")
    run("req", "-new", "-key", "ca.key", "-subj", "/CN=ca.old.example.com/O=old", "-out", "ca.csr")
    run("x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-days", "3650", "-out", "ca.crt")
    run("genrsa", "-traditional", "-out", "host.key", "2048")
    run("req", "-new", "-key", "host.key", "-subj", "/CN=old.example.com", "-out", "host.csr")
    run("x509", "-req", "-in", "host.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "365", "-out", "host.crt")
    assert "Version: 1" in openssl("x509", "-in", work / "host.crt", "-noout", "-text").stdout
    write(ssl_dir / "ssl.key", (work / "host.key").read_bytes(), 0o600)
    write(ssl_dir / "ssl.crt", (work / "host.crt").read_bytes())
    write(ssl_dir / "authorities" / "ca.old.example.com.crt", (work / "ca.crt").read_bytes())
    desired = tmp_path / "n" / "desired-state.json"
    desired.write_text(json.dumps({"hostname": "old.example.com"}))
    from conftest import run_cli

    result = run_cli("reconcile", "--ssl-dir", ssl_dir, "--desired-state", desired, "--json")
    assert result.rc == 0, result.out
    assert _codes(result) == ["hostname"]  # no subjectAltName: a warning, not a refusal
    assert set(keytool_list(ssl_dir / "authorities.jks")) == {"ca.old.example.com", "old.example.com"}
    assert openssl("verify", "-CApath", ssl_dir / "authorities", ssl_dir / "ssl.crt").stdout.strip().endswith("OK")


def test_expiring_soon_and_hostname_are_warnings(fresh) -> None:
    soon = make_host(fresh.ca, "master.example.com", key=fresh.ssl.key, days=10, sans=["other.example.com"])
    (fresh.ssl_dir / "ssl.crt").write_bytes(soon.cert_pem())
    result = reconcile(fresh)
    assert result.rc == 0
    assert result.json()["status"] == "warning"
    assert _codes(result) == ["expiring", "hostname"]
    reasons = " ".join(f["reason"] for f in result.json()["findings"])
    assert "expires in 8 days" in reasons or "expires in 9 days" in reasons
    assert "does not name this host (master.example.com)" in reasons


def test_web_cert_from_outside_ca_is_unverified_until_its_ca_arrives(fresh) -> None:
    outside = make_ca("Outside Trust Root")
    web = make_host(outside, "master.example.com")
    write(fresh.ssl_dir / "ssl-web.key", web.key_pem(), 0o600)
    write(fresh.ssl_dir / "ssl-web.crt", web.cert_pem())

    result = reconcile(fresh)
    assert result.rc == 0, result.out
    report = result.json()
    assert report["status"] == "warning" and _codes(result) == ["unverified"]
    assert report["findings"][0]["file"] == "ssl-web.crt"
    assert "unverified" in report["artifacts"]["ssl-web.keystore"]["message"]
    assert report["artifacts"]["ssl-web.keystore"]["certificate"]["fingerprint_sha256"] == web.fingerprint()
    assert report["artifacts"]["ssl-web.keystore"]["status"] == "warning"

    write(fresh.ssl_dir / "authorities" / "outside.crt", outside.cert_pem())
    result = reconcile(fresh)
    assert result.rc == 0 and _codes(result) == [] and result.json()["status"] == "ok"
    assert "outside" in keytool_list(fresh.ssl_dir / "authorities.jks")
    assert result.json()["artifacts"]["ssl-web.keystore"]["action"] == "unchanged"


def test_web_cert_with_its_root_inside_is_unverified_until_that_root_is_trusted(fresh) -> None:
    """Issue 11 changed this: a root that came inside the file is never the anchor (it was "verified")."""
    outside = make_ca("Outside Root")
    inter = make_ca("Outside Issuing CA", issuer=outside)
    web = make_host(inter, "master.example.com")
    write(fresh.ssl_dir / "ssl-web.key", web.key_pem(), 0o600)
    write(fresh.ssl_dir / "ssl-web.crt", web.cert_pem() + inter.cert_pem() + outside.cert_pem())
    result = reconcile(fresh)
    assert result.rc == 0 and _codes(result) == ["unverified"], result.out
    assert "self-signed and not in the trust sources" in result.json()["findings"][0]["reason"]
    assert keytool_list(fresh.ssl_dir / "ssl-web.keystore") == {"ssl-web": ("PrivateKeyEntry", 3)}
    write(fresh.ssl_dir / "authorities" / "outside.crt", outside.cert_pem())
    result = reconcile(fresh)
    assert result.rc == 0 and _codes(result) == [], result.out


def test_web_cert_with_a_forged_chain_is_refused(fresh) -> None:
    outside = make_ca("Outside Root")
    impostor = make_ca("Outside Root")  # same name, other key
    web = make_host(outside, "master.example.com")
    write(fresh.ssl_dir / "ssl-web.key", web.key_pem(), 0o600)
    write(fresh.ssl_dir / "ssl-web.crt", web.cert_pem() + impostor.cert_pem())
    result = reconcile(fresh)
    assert result.rc == 1
    # issue 11: the root in the file is no anchor, so the broken link itself is the finding
    assert [f["code"] for f in result.json()["findings"]] == ["bad-chain"]
