"""The certificate series in /metrics (and the textfile) tell the truth about hostile layouts: one series
per certificate a file holds (a key file none, chain.pem only its intermediates), never two series with the
same labels (node_exporter refuses the whole file), and CNs read from the certificate, never split out of
RFC 4514 text (a CN may hold a comma; an O may hold ",CN=")."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from daemonkit import RunningDaemon, http_get, wait_until
from prometheus_client.parser import text_string_to_metric_families

from sslreconciler.daemon.metrics import render_metrics
from sslreconciler.model.findings import FindingCode

from conftest import run_cli
from pkitools import Issued, make_ca, new_key, seed_node, write

CERT_FAMILIES = ("x509_cert_not_after", "x509_cert_expired")


def _samples(text: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every sample of the text as (name, sorted labels), parsed as Prometheus parses it."""
    return [
        (s.name, tuple(sorted(s.labels.items())))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _certs(text: str) -> list[dict[str, str]]:
    return [dict(labels) for name, labels in _samples(text) if name == "x509_cert_not_after"]


def _unique(text: str) -> None:
    twice = [k for k, n in Counter(_samples(text)).items() if n > 1]
    assert not twice, f"series with the same labels: {twice}"


def _ca_with_o_holding_cn() -> Issued:
    """A CA whose O reads `Ex,CN=fake`: its RFC 4514 text is `CN=real,O=Ex\\,CN=fake`."""
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ex,CN=fake"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "real")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def test_hostile_layout_gives_true_unique_series(tmp_path: Path, ca: Issued) -> None:
    inter = make_ca("Example, Inc. Issuing CA", issuer=ca)
    odd = _ca_with_o_holding_cn()
    node = seed_node(tmp_path / "n", "master.example.com", ca, intermediate=inter)
    auth = node.ssl_dir / "authorities"
    write(auth / "ca.master.example.com.crt", ca.cert_pem() + ca.cert_pem())  # the same CA twice in one file
    write(auth / "copy.crt", ca.cert_pem())  # and once more in another
    write(auth / "odd.crt", odd.cert_pem())
    textfile = tmp_path / "tf" / "sslreconciler.prom"
    textfile.parent.mkdir()
    d = RunningDaemon(node, tmp_path / "d", settings=f'metrics_textfile = "{textfile}"')
    try:
        d.start()
        d.wait_for(lambda doc: doc["counts"]["reconciles"] >= 1, what="a reconcile")
        wait_until(textfile.is_file, timeout=60, what="the textfile")
        _, health = d.health()
        code, body = http_get(d.socket, "/metrics")
        assert code == 200
        metrics = body.decode()
    finally:
        d.close()
    for text in (metrics, textfile.read_text()):
        _unique(text)
    certs = _certs(metrics)
    by_file: dict[str, list[dict[str, str]]] = {}
    for c in certs:
        by_file.setdefault(c["filepath"], []).append(c)
    # a key file holds no certificate: no series, whatever the pair's leaf
    assert not [f for f in by_file if f.endswith(".key")], sorted(by_file)
    leaf_serial, inter_serial = f"{node.ssl.cert.serial_number:x}", f"{inter.cert.serial_number:x}"
    # chain.pem holds the intermediate only: its series carries the intermediate's serial and CN
    assert [(c["serial_number"], c["subject_CN"], c["issuer_CN"]) for c in by_file["live/ssl.chain.pem"]] == [
        (inter_serial, "Example, Inc. Issuing CA", "ca.master.example.com")]
    # the leaf, wherever it is, names its issuer's CN whole, comma and all
    leaf = [c for c in certs if c["serial_number"] == leaf_serial]
    assert {c["filepath"] for c in leaf} >= {"ssl.keystore", "ssl.crt", "live/ssl.crt", "live/ssl.fullchain.pem"}
    assert {(c["subject_CN"], c["issuer_CN"]) for c in leaf} == {("master.example.com", "Example, Inc. Issuing CA")}
    # an O holding ",CN=fake" does not fool it
    assert [(c["subject_CN"], c["issuer_CN"]) for c in certs if c["serial_number"] == f"{odd.cert.serial_number:x}"] \
        == [("real", "real")]
    # the same CA twice in one file: one series for that file; once per file that holds it
    root = [c["filepath"] for c in certs if c["serial_number"] == f"{ca.cert.serial_number:x}"]
    assert sorted(root) == ["authorities/ca.master.example.com.crt", "authorities/copy.crt"], root
    # the health document carries the CNs it read (added keys; subject/issuer unchanged)
    doc_cert = health["artifacts"]["ssl.keystore"]["certificate"]
    assert (doc_cert["subject_cn"], doc_cert["issuer_cn"]) == ("master.example.com", "Example, Inc. Issuing CA")
    assert doc_cert["issuer"] == "CN=Example\\, Inc. Issuing CA"


def test_empty_chain_pem_and_key_files_have_no_series(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)  # no intermediate: chain.pem is empty
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json")
    report = result.json()
    assert (node.ssl_dir / "live" / "ssl.chain.pem").read_bytes() == b""
    assert "certificate" not in report["artifacts"]["live/ssl.chain.pem"]
    assert "certificate" not in report["artifacts"]["live/ssl.key"]
    text = render_metrics({"status": report["status"], "artifacts": report["artifacts"],
                           "certificates": report.get("certificates", [])})
    _unique(text)
    files = {c["filepath"] for c in _certs(text)}
    assert "live/ssl.chain.pem" not in files and "live/ssl.key" not in files
    assert {"ssl.keystore", "live/ssl.crt", "live/ssl.fullchain.pem"} <= files


def test_cn_from_rfc4514_text_of_an_older_document() -> None:
    """A document without subject_cn/issuer_cn (an older daemon's): the text is parsed as RFC 4514."""
    doc = {"status": "ok", "certificates": [
        {"file": "authorities/a.crt", "subject": "CN=Example\\, Inc. Root CA,O=Example", "issuer": "O=Ex\\,CN=fake,CN=real",
         "serial": "1a", "not_after": "2030-01-01T00:00:00Z", "fingerprint_sha256": "00"},
    ]}
    [cert] = _certs(render_metrics(doc))  # type: ignore[arg-type]
    assert (cert["subject_CN"], cert["issuer_CN"]) == ("Example, Inc. Root CA", "real")


def test_every_finding_code_has_a_troubleshooting_row() -> None:
    """`status` shows a finding's code; docs/operations.md's table says what it means and what to do."""
    text = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    section = text.split("## Troubleshoot a finding", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| `")]
    assert all(len(r) == 5 and r[2].strip() and r[3].strip() for r in rows), "a row lacks its meaning or its fix"
    documented = {code for r in rows for code in re.findall(r"`([a-z0-9-]+)`", r[1])}
    assert {c.value for c in FindingCode} - documented == set()
