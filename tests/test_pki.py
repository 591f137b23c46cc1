"""The cluster PKI commands: a three-host cluster from nothing, hostile bundles, the web-cert flow."""

from __future__ import annotations

import gzip
import json
import os
import tarfile
from pathlib import Path

import pytest
from bundlekit import HOSTS, copy_cluster, ok, template_cluster
from cryptography.hazmat.primitives import serialization
from javakit import assert_every_pair_talks, store_probes
from tarkit import file_member, members_of, rehashed, tgz

from conftest import PASSWORD, openssl, run_cli, snapshot
from pkitools import make_ca, make_host, write


@pytest.fixture(scope="module")
def built_cluster(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One cluster per module, never used directly: each test gets its own copy of it."""
    return template_cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture
def cluster(built_cluster: dict, tmp_path: Path) -> dict:
    return copy_cluster(built_cluster, tmp_path)


def test_three_host_cluster_every_pair_handshakes(cluster, java_classes: Path) -> None:
    nodes = cluster["nodes"]
    listing = json.loads(ok("pki", "list", "--staging", cluster["staging"], "--json"))
    assert sorted(r["host"] for r in listing) == HOSTS and all(r["key_matches"] for r in listing)
    trust = store_probes(java_classes, "system", [("JKS", nodes[h] / "ssl" / "authorities.jks", PASSWORD) for h in HOSTS])
    for host, probe in zip(HOSTS, trust, strict=True):  # Java opens every node's truststore (one JVM)
        assert probe.rc == 0 and sorted(probe.out.splitlines()) == [
            "ca.master.example.com\ttrusted\t1", f"{host}\ttrusted\t1"], (host, probe)
    for host, node in nodes.items():
        san = openssl("x509", "-in", node / "ssl" / "ssl.crt", "-noout", "-ext", "subjectAltName").stdout
        assert f"DNS:{host}" in san and "URI:sip:example.com" in san
    assert_every_pair_talks(java_classes, {host: nodes[host] / "ssl" for host in HOSTS})


def test_bundle_holds_no_foreign_key_nor_the_ca_key(cluster) -> None:
    staging = cluster["staging"]
    secrets = {p.name: p.read_bytes() for p in staging.glob("*.key")}
    assert "ca.master.example.com.key" in secrets and len(secrets) == 4
    for host in HOSTS:
        with tarfile.open(cluster["tmp"] / f"{host}.tgz") as tar:
            blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        everything = b"".join(blobs.values())
        for name, key in secrets.items():
            body = b"".join(key.splitlines()[1:-1])[:64]
            if name == f"{host}.key":
                assert blobs["ssl.key"] == key
            else:
                assert body not in everything.replace(b"\n", b""), f"{host} bundle holds {name}"
        assert sorted(blobs) == ["authorities.jks", "authorities/ca.master.example.com.crt", "manifest.json",
                                 "manifest.sig", "ssl.crt", "ssl.key"]


def test_installing_the_same_bundle_twice_rewrites_nothing(cluster) -> None:
    node = cluster["nodes"]["sec1.example.com"]
    before = snapshot(node / "ssl")
    out = ok("pki", "install-bundle", cluster["tmp"] / "sec1.example.com.tgz", "--ssl-dir", node / "ssl",
              "--desired-state", node / "desired.json")
    assert "nothing new" in out
    assert snapshot(node / "ssl") == before


def test_init_ca_twice_is_a_noop_and_force_says_what_breaks(cluster) -> None:
    staging = cluster["staging"]
    before = snapshot(staging)
    assert "nothing done" in ok("pki", "init-ca", "--staging", staging)
    assert snapshot(staging) == before
    other = run_cli("pki", "init-ca", "--staging", staging, "--name", "ca.other")
    assert other.rc == 1 and "--force" in other.err
    forced = ok("pki", "init-ca", "--staging", staging, "--force", "--name", "ca.replacement")
    assert "breaks every certificate" in forced and "sec1.example.com" in forced
    assert list(staging.glob("ca.master.example.com.key.replaced-*"))
    again = run_cli("pki", "issue", "--staging", staging, "sec1.example.com")
    assert again.rc == 1 and "--renew" in again.err and "not the current CA ca.replacement" in again.err
    assert "issued" in ok("pki", "issue", "--staging", staging, "sec1.example.com", "--renew")


def _rebuilt(members, replace: dict[str, bytes]) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Members with some contents replaced, the manifest updated to match (so only the real check refuses)."""
    return [file_member(name, data) for name, data in rehashed({**{m.name: d for m, d in members}, **replace}).items()]


@pytest.fixture(scope="module")
def hostile_bundles(built_cluster: dict) -> dict[str, tuple[bytes, str]]:
    """Each hostile bundle's bytes and the words its refusal must hold, made once from the module's cluster
    (only read: each test writes its bundle into its own copy)."""
    good = built_cluster["tmp"] / "sec2.example.com.tgz"
    members = members_of(good)
    link = tarfile.TarInfo("ssl.key")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    rogue = make_ca("ca.master.example.com")  # same name, other key
    rogue_host = make_host(rogue, "sec2.example.com")
    other_key = make_host(rogue, "x").key_pem()
    data = good.read_bytes()
    return {
        "path-traversal": (tgz([*members, file_member("../../evil.crt", b"x")]), "climbs out"),
        "absolute-path": (tgz([file_member("/tmp/evil-abs.crt", b"x"), *members]), "absolute path"),
        "symlink-member": (tgz([(link, None)]), "is a link"),
        "duplicate": (tgz([*members, members[-1]]), "appears twice"),
        "wrong-ca": (tgz(_rebuilt(members, {"authorities/ca.master.example.com.crt": rogue.cert_pem()})),
                     "not signed by the bundled CA"),
        "other-ca-host": (tgz(_rebuilt(members, {"ssl.key": rogue_host.key_pem(), "ssl.crt": rogue_host.cert_pem()})),
                          "not signed by the bundled CA"),
        "mismatched-key": (tgz(_rebuilt(members, {"ssl.key": other_key})), "does not match"),
        "manifest-mismatch": (tgz([file_member(m.name, d + b"\n" if m.name == "ssl.crt" else d) for m, d in members]),
                              "does not match its SHA-256"),
        "truncated-gzip": (data[: len(data) // 2], "not a readable gzip tar"),
        "not-gzip": (b"hello", "not a readable gzip tar"),
        "unknown-member": (tgz([*members, file_member("etc/cron.d/evil", b"x")]), "not a file a bundle holds"),
    }


@pytest.mark.parametrize("case", ["path-traversal", "absolute-path", "symlink-member", "duplicate", "wrong-ca",
                                  "other-ca-host", "mismatched-key", "manifest-mismatch", "truncated-gzip",
                                  "not-gzip", "unknown-member"])
def test_hostile_bundles_are_refused_with_nothing_written(cluster, hostile_bundles, case: str) -> None:
    data, words = hostile_bundles[case]
    bundle = cluster["tmp"] / f"hostile-{case}.tgz"
    bundle.write_bytes(data)
    node = cluster["nodes"]["sec2.example.com"]
    fresh = cluster["tmp"] / "fresh-node"
    before_tmp = {p for p in cluster["tmp"].rglob("*")}
    before = snapshot(node / "ssl")
    for target in (node / "ssl", fresh / "ssl"):
        result = run_cli("pki", "install-bundle", bundle, "--ssl-dir", target, "--desired-state", node / "desired.json")
        assert result.rc == 1, result.out + result.err
        assert words in result.err and str(bundle) in result.err and "Traceback" not in result.err, result.err
    assert snapshot(node / "ssl") == before
    assert not fresh.exists()
    assert {p for p in cluster["tmp"].rglob("*")} == before_tmp
    assert not Path("/tmp/evil-abs.crt").exists()


def test_web_certificate_from_an_outside_ca(cluster, tmp_path: Path) -> None:
    node = cluster["nodes"]["master.example.com"]
    ssl_dir = node / "ssl"
    common = ["--ssl-dir", ssl_dir, "--desired-state", node / "desired.json"]
    csr = tmp_path / "web.csr"
    ok("web", "csr", *common, "--subject", "/CN=master.example.com/O=Example PBX", "--san", "DNS:pbx.example.com",
        "-o", csr)
    pending = ssl_dir / "ssl-web.key.pending"
    assert oct(pending.stat().st_mode & 0o777) == "0o600"
    text = openssl("req", "-in", csr, "-noout", "-text", "-verify").stdout
    assert "CN = master.example.com" in text and "DNS:pbx.example.com" in text
    # an outside CA signs it with openssl, knowing nothing of this project
    outside = make_ca("Outside Commercial CA")
    ca_crt = write(tmp_path / "outside.crt", outside.cert_pem())
    ca_key = write(tmp_path / "outside.key", outside.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    signed = tmp_path / "web.crt"
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-days", "365",
            "-copy_extensions", "copy", "-out", signed)
    result = run_cli("web", "install", *common, "--cert", signed, "--json")
    assert result.rc == 0, result.out + result.err
    report = result.json()
    assert report["status"] == "warning" and [f["code"] for f in report["findings"]] == ["unverified"]
    fp = openssl("x509", "-in", signed, "-noout", "-fingerprint", "-sha256").stdout.split("=")[1].strip()
    assert report["artifacts"]["ssl-web.keystore"]["certificate"]["fingerprint_sha256"] == fp.replace(":", "").lower()
    assert "unverified" in report["artifacts"]["ssl-web.keystore"]["message"]
    assert not pending.exists()
    assert (ssl_dir / "ssl-web.crt.previous").exists() is False  # first install: the web pair was the ssl pair
    # the outside CA arrives: verified
    write(ssl_dir / "authorities" / "outside.crt", outside.cert_pem())
    again = run_cli("reconcile", *common, "--json")
    assert again.rc == 0 and again.json()["status"] == "ok" and again.json()["findings"] == []
    # a second web cert, then rollback
    ok("web", "csr", *common, "--subject", "CN=master.example.com", "-o", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-days", "30",
            "-copy_extensions", "copy", "-out", signed)
    second = run_cli("web", "install", *common, "--cert", signed, "--json")
    assert second.rc == 0 and "verified against its issuer" not in second.out
    second_fp = second.json()["artifacts"]["ssl-web.keystore"]["certificate"]["fingerprint_sha256"]
    assert second_fp != fp.replace(":", "").lower()
    back = run_cli("web", "rollback", *common)
    assert back.rc == 0, back.out + back.err
    final = run_cli("reconcile", *common, "--json").json()
    assert final["artifacts"]["ssl-web.keystore"]["certificate"]["fingerprint_sha256"] == fp.replace(":", "").lower()
    # rolling back the first install returns to the ssl pair
    ok("web", "rollback", *common)  # undo the rollback: the second cert again
    assert run_cli("reconcile", *common, "--json").json()["artifacts"]["ssl-web.keystore"]["certificate"][
        "fingerprint_sha256"] == second_fp


def test_web_install_refuses_a_cert_for_another_key(cluster, tmp_path: Path) -> None:
    node = cluster["nodes"]["master.example.com"]
    common = ["--ssl-dir", node / "ssl", "--desired-state", node / "desired.json"]
    ok("web", "csr", *common, "--subject", "/CN=master.example.com", "-o", tmp_path / "a.csr")
    stray = make_host(make_ca("Some CA"), "master.example.com")
    cert = write(tmp_path / "stray.crt", stray.cert_pem())
    before = snapshot(node / "ssl")
    result = run_cli("web", "install", *common, "--cert", cert)
    assert result.rc == 1 and "does not match the private key" in result.err
    assert snapshot(node / "ssl") == before
    assert run_cli("web", "rollback", *common).rc == 1  # nothing to roll back to


def test_gzip_bomb_like_member_is_bounded(cluster) -> None:
    big = tarfile.TarInfo("ssl.crt")
    big.size = 9 * 1024 * 1024
    data = tgz([(big, b"\0" * big.size)])
    bundle = cluster["tmp"] / "big.tgz"
    bundle.write_bytes(data)
    assert len(gzip.decompress(data)) > big.size
    result = run_cli("pki", "install-bundle", bundle, "--ssl-dir", cluster["tmp"] / "x" / "ssl")
    assert result.rc == 1 and "over the" in result.err
    assert not os.path.exists(cluster["tmp"] / "x")
