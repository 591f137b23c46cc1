"""`pki renew` (only what is due, the rest byte-for-byte alone) and the trusted-set fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from cryptography import x509
from daemonkit import RunningDaemon, http_get

from conftest import openssl, run_cli
from pkitools import make_ca, seed_node


def _ok(*args) -> str:
    result = run_cli(*args)
    assert result.rc == 0, result.out + result.err
    return result.out


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_renew_reissues_only_what_expires_within_the_window(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    _ok("pki", "init-ca", "--staging", staging, "--name", "ca.master.example.com")
    _ok("pki", "issue", "--staging", staging, "due.example.com", "--days", "10", "--san", "IP:10.0.0.7",
        "--sip-domain", "example.com", "--key-type", "ec-p256")
    _ok("pki", "issue", "--staging", staging, "due.example.com", "--web", "--days", "5")
    _ok("pki", "issue", "--staging", staging, "fine.example.com", "--days", "400")
    untouched = {p.name: p.read_bytes() for p in staging.iterdir() if not p.name.startswith("due.example.com.")}
    old = _cert(staging / "due.example.com.crt")

    out = _ok("pki", "renew", "--staging", staging, "--within", "30")
    assert out.splitlines()[0].startswith("due.example.com: renewed ssl (due.example.com.crt)")
    assert len(out.splitlines()) == 1  # the web pair waits for --web-too; fine.example.com is not due
    assert untouched == {p.name: p.read_bytes() for p in staging.iterdir() if p.name in untouched}

    new = _cert(staging / "due.example.com.crt")
    assert new.serial_number != old.serial_number
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == \
        old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert new.public_key().public_numbers() != old.public_key().public_numbers()  # a new key
    assert type(new.public_key()) is type(old.public_key())  # of the same kind
    # 10 days are not longer than the 30-day window: the default host lifetime instead (test_renew_churn.py).
    assert (new.not_valid_after_utc - new.not_valid_before_utc).days == 1095
    openssl("verify", "-CAfile", staging / "ca.master.example.com.crt", staging / "due.example.com.crt")
    listing = {(r["host"], r["web"]): r for r in json.loads(_ok("pki", "list", "--staging", staging, "--json"))}
    assert listing[("due.example.com", False)]["key_matches"] is True

    # --web-too takes the web pair; --days sets the new lifetime; --json says what was done.
    renewed = json.loads(_ok("pki", "renew", "--staging", staging, "--within", "30", "--web-too", "--days", "365",
                             "--json"))
    assert sorted((r["host"], r["web"]) for r in renewed) == [("due.example.com", True)]
    for r in renewed:
        cert = _cert(staging / r["file"])
        assert f"{cert.serial_number:x}" == r["serial"]
        assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=360)
    # Nothing due now: nothing renewed, nothing written.
    before = {p.name: p.read_bytes() for p in staging.iterdir()}
    assert _ok("pki", "renew", "--staging", staging, "--within", "30", "--web-too") == \
        "nothing expires within 30 days; nothing renewed\n"
    assert before == {p.name: p.read_bytes() for p in staging.iterdir()}


def test_renew_without_a_ca_or_with_a_bad_window_says_why(tmp_path: Path) -> None:
    result = run_cli("pki", "renew", "--staging", tmp_path, "--within", "30")
    assert result.rc == 1 and "no cluster CA here" in result.err
    result = run_cli("pki", "renew", "--staging", tmp_path, "--within", "-1")
    assert result.rc == 2 and "--within -1" in result.err  # a usage error, as a bad --days
    assert "--web-too" in run_cli("pki", "renew", "--help").out


def _trust(node_ssl: Path, desired: Path) -> dict:
    result = run_cli("reconcile", "--ssl-dir", node_ssl, "--desired-state", desired, "--json")
    assert result.rc == 0, result.out + result.err
    return json.loads(result.out)["trust"]


def test_same_trusted_set_same_fingerprint_whatever_the_file_names(tmp_path: Path) -> None:
    ca, other = make_ca("ca.master.example.com"), make_ca("ca.other.example.org")
    a = seed_node(tmp_path / "a", "a.example.com", ca, ca_file="cluster.crt")
    b = seed_node(tmp_path / "b", "b.example.com", ca, ca_file="ca.master.example.com.pem")
    ta, tb = _trust(a.ssl_dir, a.desired), _trust(b.ssl_dir, b.desired)
    assert ta["fingerprint"] == tb["fingerprint"]  # each node's own certificate is not part of the set
    assert ta["authorities"] == ["cluster"] and tb["authorities"] == ["ca.master.example.com"]
    # Independently: SHA-256 over the sorted DER of the trusted certificates.
    assert ta["fingerprint"] == hashlib.sha256(ca.cert_der()).hexdigest()

    (b.ssl_dir / "authorities" / "other.crt").write_bytes(other.cert_pem())
    tb = _trust(b.ssl_dir, b.desired)
    assert tb["fingerprint"] == hashlib.sha256(b"".join(sorted([ca.cert_der(), other.cert_der()]))).hexdigest()
    assert tb["authorities"] == ["ca.master.example.com", "other"]
    # The same CA twice (another name, another encoding) is still one certificate of the set.
    (a.ssl_dir / "authorities" / "copy.crt").write_bytes(ca.cert_pem())
    (a.ssl_dir / "authorities" / "other-too.crt").write_bytes(other.cert_pem())
    assert _trust(a.ssl_dir, a.desired)["fingerprint"] == tb["fingerprint"]


def test_health_and_metrics_carry_the_trust_set(tmp_path: Path, ca) -> None:
    node = seed_node(tmp_path / "n", "n.example.com", ca)
    daemon = RunningDaemon(node, tmp_path / "work").start()
    try:
        doc = daemon.wait_for(lambda d: d["status"] == "ok", what="ok")
        expected = hashlib.sha256(ca.cert_der()).hexdigest()
        assert doc["trust"] == {"fingerprint": expected, "authorities": ["ca.master.example.com"],
                                "cas": [{"alias": "ca.master.example.com", "subject": "CN=ca.master.example.com",
                                         "fingerprint": expected}]}
        metrics = http_get(daemon.socket, "/metrics")[1].decode()
        assert f'sslreconciler_trust_set_info{{fingerprint="{expected}"}} 1' in metrics
        assert "# TYPE sslreconciler_trust_set_info gauge" in metrics
        text = run_cli("status", "--socket", daemon.socket).out
        assert f"trusts: ca.master.example.com (set {expected[:16]})" in text
    finally:
        daemon.close()
