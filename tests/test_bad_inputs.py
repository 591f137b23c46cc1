"""Every bad source: a finding naming the file and the reason, exit 1, the last good stores untouched."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import copied_node, keytool_list, reconcile, reconciled_template, snapshot
from pkitools import NOW, Issued, Node, make_ca, make_host, new_key, seed_node, write

WEB_STORES = ("ssl-web.keystore", "ssl-web.p12")
SSL_STORES = ("ssl.keystore", "ssl.p12", "authorities.jks")


@pytest.fixture(scope="module")
def built_web_node(tmp_path_factory: pytest.TempPathFactory, ca: Issued) -> tuple[Node, Path]:
    """The node ``web_node`` copies, built once per module (tests write: each gets its own copy)."""
    return reconciled_template(tmp_path_factory.mktemp("web-node"), ca, web=True)


@pytest.fixture
def web_node(built_web_node: tuple[Node, Path], tmp_path: Path) -> Node:
    """A node with its own web pair, reconciled once: the last good state every case starts from."""
    return copied_node(built_web_node, tmp_path)


def _finding(report: dict, file: str) -> dict:
    matches = [f for f in report["findings"] if f["file"] == file and f["level"] == "error"]
    assert matches, f"no error finding for {file}: {report['findings']}"
    return matches[0]


def _assert_web_kept(node, before: dict, report: dict) -> None:
    after = snapshot(node.ssl_dir)
    for name in (*WEB_STORES, *SSL_STORES):
        assert after[name] == before[name], f"{name} changed"
    for name in WEB_STORES:
        artifact = report["artifacts"][name]
        assert artifact["action"] == "kept-last-good" and artifact["status"] == "degraded", artifact
        assert artifact["certificate"]["fingerprint_sha256"] == node.web.fingerprint()
    for name in ("ssl.keystore", "ssl.p12"):
        assert report["artifacts"][name]["action"] == "unchanged"


def _encrypted_pkcs8(node) -> bytes:
    return node.web.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"pw"))


def _encrypted_pkcs1(node) -> bytes:
    return node.web.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.BestAvailableEncryption(b"pw"))


def _inconsistent_key(node) -> bytes:
    """The right public half with a corrupted private exponent: only a real check notices."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    n = node.web.key.private_numbers()
    bad = rsa.RSAPrivateNumbers(n.p, n.q, n.d + 2, n.dmp1, n.dmq1 ^ 4, n.iqmp, n.public_numbers)
    return bad.private_key(unsafe_skip_rsa_key_validation=True).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


CASES = {
    "inconsistent-key": ("ssl-web.key", _inconsistent_key, "garbage", "inconsistent"),
    # name: (file, how to break it, expected code, words in the reason)
    "key-mismatch": ("ssl-web.key", lambda n: new_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "key-mismatch", "does not match the private key in ssl-web.key"),
    "encrypted-pkcs8": ("ssl-web.key", _encrypted_pkcs8, "encrypted-key", "encrypted"),
    "encrypted-pkcs1": ("ssl-web.key", _encrypted_pkcs1, "encrypted-key", "encrypted"),
    "garbage-key": ("ssl-web.key", lambda n: os.urandom(3000), "garbage", "neither PEM nor"),
    "garbage-cert": ("ssl-web.crt", lambda n: b"hello, I am not a certificate\n" * 10, "garbage", "neither PEM nor"),
    "empty-key": ("ssl-web.key", lambda n: b"", "empty", "is empty"),
    "empty-cert": ("ssl-web.crt", lambda n: b"\n", "empty", "is empty"),
    "truncated-key": ("ssl-web.key", lambda n: n.web.key_pem()[:400], "garbage", "truncated"),
    "truncated-cert": ("ssl-web.crt", lambda n: n.web.cert_pem()[:-80], "garbage", "truncated"),
    "pem-around-garbage": ("ssl-web.crt", lambda n: b"-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
                           "garbage", "cannot be parsed"),
    "too-large": ("ssl-web.crt", lambda n: n.web.cert_pem() + b"#" * (1024 * 1024 + 1), "too-large", "over the"),
    "expired": ("ssl-web.crt", lambda n: _reissue(n, not_before=NOW - dt.timedelta(days=400), days=300),
                "expired", "expired on"),
    "not-yet-valid": ("ssl-web.crt", lambda n: _reissue(n, not_before=NOW + dt.timedelta(days=2)),
                      "not-yet-valid", "not valid before"),
}


def _reissue(node, **kwargs) -> bytes:
    return make_host(node.ca, node.host, key=node.web.key, **kwargs).cert_pem()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_web_source_keeps_last_good(web_node, case: str) -> None:
    file, make, code, words = CASES[case]
    before = snapshot(web_node.ssl_dir)
    (web_node.ssl_dir / file).write_bytes(make(web_node))
    result = reconcile(web_node)
    assert result.rc == 1, result.out + result.err
    assert "Traceback" not in result.err
    report = result.json()
    finding = _finding(report, "ssl-web.crt" if code == "key-mismatch" else file)  # a mismatch names the cert
    assert finding["code"] == code and words in finding["reason"], finding
    assert report["status"] == "degraded"
    _assert_web_kept(web_node, before, report)


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "symlink-out", "dangling", "missing-half"])
def test_wrong_kind_of_file(web_node, kind: str, tmp_path: Path) -> None:
    if kind == "device" and os.geteuid() != 0:
        pytest.skip("mknod needs root")  # CI runs as root
    before = snapshot(web_node.ssl_dir)
    target = web_node.ssl_dir / "ssl-web.crt"
    target.unlink()
    expected = {"directory": ("not-a-file", "directory"), "fifo": ("not-a-file", "FIFO"),
                "device": ("not-a-file", "device"), "symlink-out": ("symlink-escape", "outside the allowed"),
                "dangling": ("dangling-symlink", "dangling"), "missing-half": ("missing", "ssl-web.key is present")}
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "device":
        os.mknod(target, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # like /dev/zero
    elif kind == "symlink-out":
        outside = write(tmp_path / "outside" / "web.crt", web_node.web.cert_pem())
        target.symlink_to(outside)
    elif kind == "dangling":
        target.symlink_to(tmp_path / "nowhere.crt")
    result = reconcile(web_node)
    assert result.rc == 1, result.out + result.err
    finding = _finding(result.json(), "ssl-web.crt")
    code, words = expected[kind]
    assert finding["code"] == code and words in finding["reason"], finding
    snap = {k: v for k, v in before.items() if k != "ssl-web.crt"}
    after = {k: v for k, v in snapshot(web_node.ssl_dir).items() if k in snap}
    assert after == snap


def test_symlink_into_an_allowed_dir_is_followed(web_node, tmp_path: Path) -> None:
    outside = write(tmp_path / "vault" / "web.crt", web_node.web.cert_pem())
    (web_node.ssl_dir / "ssl-web.crt").unlink()
    (web_node.ssl_dir / "ssl-web.crt").symlink_to(outside)
    web_node.desired.write_text(json.dumps({"hostname": web_node.host, "allowed_symlink_dirs": [str(tmp_path / "vault")]}))
    result = reconcile(web_node)
    assert result.rc == 0, result.out
    assert result.json()["artifacts"]["ssl-web.keystore"]["action"] == "unchanged"


def test_kubernetes_style_data_symlinks_are_inside(web_node) -> None:
    data = web_node.ssl_dir / "..2026_11_27" / "ssl-web.crt"
    write(data, web_node.web.cert_pem())
    (web_node.ssl_dir / "..data").symlink_to("..2026_11_27")
    (web_node.ssl_dir / "ssl-web.crt").unlink()
    (web_node.ssl_dir / "ssl-web.crt").symlink_to("..data/ssl-web.crt")
    assert reconcile(web_node).rc == 0


def test_fifo_does_not_hang(web_node) -> None:
    target = web_node.ssl_dir / "ssl-web.key"
    target.unlink()
    os.mkfifo(target)
    result = reconcile(web_node)  # run_cli's timeout turns a hang into a failure
    assert result.rc == 1


def test_ssl_cert_from_another_ca_blocks_ssl_stores_and_truststore(web_node) -> None:
    before = snapshot(web_node.ssl_dir)
    rogue = make_ca("rogue.example.com")
    other = make_host(rogue, web_node.host, key=web_node.ssl.key)
    (web_node.ssl_dir / "ssl.crt").write_bytes(other.cert_pem())
    result = reconcile(web_node)
    assert result.rc == 1
    report = result.json()
    finding = _finding(report, "ssl.crt")
    assert finding["code"] == "untrusted" and "does not chain to a trusted CA" in finding["reason"]
    for name in SSL_STORES:
        assert report["artifacts"][name]["action"] == "kept-last-good", name
        assert snapshot(web_node.ssl_dir)[name] == before[name]
    for name in WEB_STORES:  # the web pair is fine and stays as it was
        assert report["artifacts"][name]["action"] == "unchanged"


def test_bad_authority_is_left_out_and_the_others_go_in(web_node) -> None:
    rogue = make_ca("rogue.example.com")
    write(web_node.ssl_dir / "authorities" / "stranger.crt", make_host(rogue, "stranger.example.com").cert_pem())
    write(web_node.ssl_dir / "authorities" / "peer.crt", make_host(web_node.ca, "peer.example.com").cert_pem())
    write(web_node.ssl_dir / "authorities" / "broken.crt", b"-----BEGIN CERTIFICATE-----\nxx\n")
    result = reconcile(web_node)
    assert result.rc == 1
    report = result.json()
    assert _finding(report, "authorities/stranger.crt")["code"] == "untrusted"
    assert _finding(report, "authorities/broken.crt")["code"] == "garbage"
    assert report["artifacts"]["authorities.jks"]["action"] == "written"
    assert set(keytool_list(web_node.ssl_dir / "authorities.jks")) == {
        "ca.master.example.com", "peer", "master.example.com"}


def test_duplicate_alias_is_reported(web_node) -> None:
    write(web_node.ssl_dir / "authorities" / "peer.crt", make_host(web_node.ca, "peer.example.com").cert_pem())
    write(web_node.ssl_dir / "authorities" / "peer.pem", make_host(web_node.ca, "peer2.example.com").cert_pem())
    result = reconcile(web_node)
    assert result.rc == 1
    assert _finding(result.json(), "authorities/peer.pem")["code"] == "duplicate-alias"


def test_expired_ca_is_an_error(web_node) -> None:
    old = make_ca("old.example.com", not_before=NOW - dt.timedelta(days=800), days=700)
    write(web_node.ssl_dir / "authorities" / "old.crt", old.cert_pem())
    result = reconcile(web_node)
    assert result.rc == 1
    assert _finding(result.json(), "authorities/old.crt")["code"] == "expired"
    assert "old" not in keytool_list(web_node.ssl_dir / "authorities.jks")


def test_key_readable_by_others(web_node) -> None:
    os.chmod(web_node.ssl_dir / "ssl-web.key", 0o644)
    result = reconcile(web_node)
    assert result.rc == 0
    assert [f["code"] for f in result.json()["findings"]] == ["key-mode"]
    web_node.desired.write_text(json.dumps({"hostname": web_node.host,
                                            "permissions": {"key_source_readable_by_others": "refuse"}}))
    result = reconcile(web_node)
    assert result.rc == 1 and _finding(result.json(), "ssl-web.key")["code"] == "key-mode"
    assert result.json()["artifacts"]["ssl-web.keystore"]["action"] == "kept-last-good"


def test_no_last_good_means_failed(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    (node.ssl_dir / "ssl.key").write_bytes(b"junk")
    result = reconcile(node)
    assert result.rc == 1
    artifacts = {n: a for n, a in result.json()["artifacts"].items() if n != "authorities.pem"}  # the CAs are fine
    assert {artifacts[n]["action"] for n in artifacts} == {"failed"}
    assert not any((node.ssl_dir / n).exists() for n in artifacts)
