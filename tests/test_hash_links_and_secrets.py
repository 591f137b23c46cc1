"""OpenSSL subject-hash links match openssl's own; no secret ever shows in any output."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from sslreconciler.pki.subject_hash import subject_hash

from conftest import openssl, reconcile, run_cli
from pkitools import NOW, Issued, make_ca, make_host, new_key, write

A = x509.NameAttribute
NAMES = {
    "plain": x509.Name([A(NameOID.COMMON_NAME, "ca.master.example.com")]),
    "case-and-spaces": x509.Name([A(NameOID.COMMON_NAME, "  My   CLUSTER\tCA  "), A(NameOID.ORGANIZATION_NAME, "ACME Inc")]),
    "unicode": x509.Name([A(NameOID.COMMON_NAME, "Zertifizierungsstelle Müller ÄÖÜ"), A(NameOID.COUNTRY_NAME, "DE")]),
    "printable": x509.Name([A(NameOID.COMMON_NAME, "Printable CA", x509.name._ASN1Type.PrintableString)]),
    "email": x509.Name([A(NameOID.EMAIL_ADDRESS, "PKI@Example.COM"), A(NameOID.COMMON_NAME, "mail ca")]),
    "multi-valued": x509.Name([x509.RelativeDistinguishedName([A(NameOID.ORGANIZATIONAL_UNIT_NAME, "Voice"),
                                                              A(NameOID.COMMON_NAME, "Multi")])]),
}


@pytest.mark.parametrize("label", sorted(NAMES))
def test_subject_hash_matches_openssl(label: str, tmp_path: Path) -> None:
    key = new_key()
    cert = (x509.CertificateBuilder().subject_name(NAMES[label]).issuer_name(NAMES[label])
            .public_key(key.public_key()).serial_number(1).not_valid_before(NOW)
            .not_valid_after(NOW.replace(year=NOW.year + 1)).sign(key, hashes.SHA256()))
    path = write(tmp_path / "c.crt", Issued(key, cert).cert_pem())
    assert subject_hash(cert) == openssl("x509", "-hash", "-noout", "-in", path).stdout.strip()


def test_links_follow_the_authorities(node) -> None:
    auth = node.ssl_dir / "authorities"
    twin_a = make_ca("Twin CA")
    twin_b = make_ca("Twin CA")  # same subject, other key: .0 and .1
    write(auth / "twin-a.crt", twin_a.cert_pem())
    write(auth / "twin-b.crt", twin_b.cert_pem())
    os.symlink("gone.crt", auth / "deadbeef.0")  # a stale link from an earlier run
    result = reconcile(node)
    assert result.rc == 0, result.out
    links = {n: os.readlink(auth / n) for n in os.listdir(auth) if os.path.islink(auth / n)}
    twin_hash = openssl("x509", "-hash", "-noout", "-in", auth / "twin-a.crt").stdout.strip()
    assert links[f"{twin_hash}.0"] == "twin-a.crt" and links[f"{twin_hash}.1"] == "twin-b.crt"
    assert "deadbeef.0" not in links and len(links) == 3
    assert result.json()["hash_links"][0]["removed"] == ["deadbeef.0"]
    host = write(node.root / "m.crt", node.ssl.cert_pem())
    assert openssl("verify", "-CApath", auth, host).stdout.strip().endswith("OK")
    (auth / "twin-a.crt").unlink()
    reconcile(node)
    links = {n: os.readlink(auth / n) for n in os.listdir(auth) if os.path.islink(auth / n)}
    assert links[f"{twin_hash}.0"] == "twin-b.crt" and f"{twin_hash}.1" not in links


def test_no_secret_in_any_output(node, tmp_path: Path) -> None:
    password = "Sup3r-S3cret-Passw0rd"
    secret_file = tmp_path / "pw"
    secret_file.write_text(password)
    node.desired.write_text(json.dumps({"hostname": node.host, "password": {"file": str(secret_file)}}))
    key_pem = (node.ssl_dir / "ssl.key").read_bytes()
    key_body = b"".join(key_pem.splitlines()[1:-1]).decode()
    outputs = []
    outputs.append(reconcile(node))
    outputs.append(reconcile(node, command="check"))
    # bad inputs of every sort: a mismatched key, an encrypted key, garbage
    (node.ssl_dir / "ssl-web.key").write_bytes(key_pem)
    write(node.ssl_dir / "ssl-web.crt", make_host(node.ca, node.host).cert_pem())
    outputs.append(reconcile(node))
    (node.ssl_dir / "ssl.key").write_bytes(key_pem.replace(b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"))
    outputs.append(reconcile(node))
    outputs.append(run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired))
    node.desired.write_text(json.dumps({"hostname": node.host, "password": {"value": password, "file": "/x"}}))
    outputs.append(reconcile(node))
    assert outputs[-1].rc == 2
    state = (tmp_path / "state" / "last-report.json").read_text()
    for text in [o.out + o.err for o in outputs] + [state]:
        assert password not in text
        assert key_body[:40] not in text and key_body[-40:] not in text
