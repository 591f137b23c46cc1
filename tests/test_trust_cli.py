"""Issue 11, through the CLI: each "What must hold" rule, with the last good stores byte-for-byte untouched
where a source is refused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from tarkit import files_of, rehashed, tgz_files

from conftest import copied_node, keytool_list, keytool_sha256, reconcile, reconciled_template, run_cli, snapshot
from pkitools import Issued, Node, make_ca, make_host, seed_node, write
from trustkit import NO_CERTSIGN_KU, cert, dns, openssl_signed

SSL_STORES = ("ssl.keystore", "ssl.p12")
WEB_STORES = ("ssl-web.keystore", "ssl-web.p12")
STORES = (*SSL_STORES, *WEB_STORES, "authorities.jks")


@pytest.fixture(scope="module")
def built_good(tmp_path_factory: pytest.TempPathFactory, ca: Issued) -> tuple[Node, Path]:
    """The node ``good`` copies, built once per module (tests write: each gets its own copy)."""
    return reconciled_template(tmp_path_factory.mktemp("good"), ca, web=True)


@pytest.fixture
def good(built_good: tuple[Node, Path], tmp_path: Path) -> Node:
    """A node with every store built from good sources: the last good state a refusal must keep."""
    return copied_node(built_good, tmp_path)


def _stores(node: Node) -> dict[str, tuple[int, int, str]]:
    return {k: v for k, v in snapshot(node.ssl_dir).items() if k in STORES}


def _findings(result) -> list[tuple[str, str, str]]:
    return sorted((f["file"], f["code"], f["level"]) for f in result.json()["findings"])


def _reason(result, file: str, code: str) -> str:
    return next(f["reason"] for f in result.json()["findings"] if f["file"] == file and f["code"] == code)


def _refused_and_kept(node: Node, before: dict, file: str, code: str, stores=(*SSL_STORES, "authorities.jks")):
    result = reconcile(node)
    assert result.rc == 1, result.out
    assert (file, code, "error") in _findings(result), result.out
    after = _stores(node)
    for name in stores:
        assert result.json()["artifacts"][name]["action"] == "kept-last-good", name
        assert after[name] == before[name], name  # same inode, mtime and bytes
    return result


# --- one rule for "verified" --------------------------------------------------------------------------


def test_a_ca_false_host_cannot_issue_in_ssl_crt(good: Node) -> None:
    before = _stores(good)
    peer = make_host(good.ca, "peer.example.com")  # a cluster host's own CA:FALSE certificate and key
    forged = cert("master.example.com", peer, ca=False, the_key=good.ssl.key)
    write(good.ssl_dir / "ssl.crt", forged.cert_pem() + peer.cert_pem())
    result = _refused_and_kept(good, before, "ssl.crt", "untrusted")
    assert "CN=peer.example.com is not a CA (basicConstraints CA:FALSE): it cannot issue CN=master.example.com" in (
        _reason(result, "ssl.crt", "untrusted"))


def test_a_ca_false_issued_certificate_in_authorities_is_left_out(good: Node) -> None:
    peer = make_host(good.ca, "peer.example.com")
    forged = cert("sec1.example.com", peer, ca=False)
    write(good.ssl_dir / "authorities" / "forged.crt", forged.cert_pem() + peer.cert_pem())
    write(good.ssl_dir / "authorities" / "forged-alone.crt", forged.cert_pem())
    result = reconcile(good)
    assert result.rc == 1
    assert ("authorities/forged.crt", "untrusted", "error") in _findings(result)
    assert ("authorities/forged-alone.crt", "untrusted", "error") in _findings(result)
    assert "is not a CA (basicConstraints CA:FALSE)" in _reason(result, "authorities/forged.crt", "untrusted")
    aliases = set(keytool_list(good.ssl_dir / "authorities.jks"))
    assert aliases == {"ca.master.example.com", "master.example.com"}


def test_path_length_and_name_constraints_are_enforced(good: Node) -> None:
    before = _stores(good)
    inter = cert("Issuing pathLen 0", good.ca, path_length=0)
    below = cert("Issuing below", inter)
    leaf = cert("master.example.com", below, ca=False, the_key=good.ssl.key)
    write(good.ssl_dir / "ssl.crt", leaf.cert_pem() + below.cert_pem() + inter.cert_pem())
    result = _refused_and_kept(good, before, "ssl.crt", "untrusted")
    assert "CN=Issuing pathLen 0 has pathLenConstraint 0 but 1 CA certificate(s) below it" in (
        _reason(result, "ssl.crt", "untrusted"))

    voice = cert("Voice Issuing", good.ca, permitted=dns(".voice.example.com"))
    leaf = cert("master.example.com", voice, ca=False, the_key=good.ssl.key)
    write(good.ssl_dir / "ssl.crt", leaf.cert_pem() + voice.cert_pem())
    result = _refused_and_kept(good, before, "ssl.crt", "untrusted")
    assert "name master.example.com is outside the permitted names (nameConstraints of CN=Voice Issuing)" in (
        _reason(result, "ssl.crt", "untrusted"))

    # pathLen 1 with two CAs below it: refused; with one: the mirror that must pass
    inter = cert("Issuing pathLen 1", good.ca, path_length=1)
    below = cert("Issuing below", inter)
    lower = cert("Issuing lower", below)
    leaf = cert("master.example.com", lower, ca=False, the_key=good.ssl.key)
    write(good.ssl_dir / "ssl.crt", leaf.cert_pem() + lower.cert_pem() + below.cert_pem() + inter.cert_pem())
    result = _refused_and_kept(good, before, "ssl.crt", "untrusted")
    assert "CN=Issuing pathLen 1 has pathLenConstraint 1 but 2" in _reason(result, "ssl.crt", "untrusted")
    wide = cert("Wide Issuing", inter, permitted=dns("example.com"))
    leaf = cert("master.example.com", wide, ca=False, the_key=good.ssl.key)
    write(good.ssl_dir / "ssl.crt", leaf.cert_pem() + wide.cert_pem() + inter.cert_pem())
    result = reconcile(good)
    assert result.rc == 0 and _findings(result) == [], result.out
    assert result.json()["artifacts"]["ssl.keystore"]["action"] == "written"


def test_bundle_with_a_ca_false_issuer_is_refused(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    for args in (("init-ca", "--staging", staging, "--name", "ca.master.example.com"),
                 ("issue", "--staging", staging, "sec1.example.com"),
                 ("issue", "--staging", staging, "sec2.example.com"),
                 ("bundle", "--staging", staging, "sec2.example.com", "-o", tmp_path / "good.tgz")):
        assert run_cli("pki", *args).rc == 0
    sec1_key = serialization.load_pem_private_key((staging / "sec1.example.com.key").read_bytes(), None)
    sec1 = Issued(sec1_key, x509.load_pem_x509_certificate((staging / "sec1.example.com.crt").read_bytes()))
    forged = cert("sec2.example.com", sec1, ca=False)  # sec1 (CA:FALSE) mints a certificate for sec2
    files = files_of(tmp_path / "good.tgz")
    files["ssl.key"], files["ssl.crt"] = forged.key_pem(), forged.cert_pem() + sec1.cert_pem()
    hostile = write(tmp_path / "hostile.tgz", tgz_files(rehashed(files)))
    result = run_cli("pki", "install-bundle", hostile, "--ssl-dir", tmp_path / "node" / "ssl")
    assert result.rc == 1
    assert "CN=sec1.example.com is not a CA (basicConstraints CA:FALSE)" in result.err, result.err
    assert "nothing installed" in result.err and not (tmp_path / "node").exists()


# --- policy findings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["weak-rsa-key", "weak-ec-curve", "weak-signature", "key-usage"])
def test_policy_rule_refuses_then_lowered_to_a_warning(good: Node, rule: str, tmp_path: Path) -> None:
    before = _stores(good)
    if rule == "weak-rsa-key":
        leaf = cert("master.example.com", good.ca, ca=False, kind="rsa1024")
    elif rule == "weak-ec-curve":
        leaf = cert("master.example.com", good.ca, ca=False, kind="secp256k1")
    elif rule == "weak-signature":
        leaf = openssl_signed(tmp_path / "sha1", "master.example.com", good.ca)
    else:  # the ssl pair is for server and client: a server-only certificate does not do
        leaf = cert("master.example.com", good.ca, ca=False, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    write(good.ssl_dir / "ssl.key", leaf.key_pem(), 0o600)
    write(good.ssl_dir / "ssl.crt", leaf.cert_pem())
    result = _refused_and_kept(good, before, "ssl.crt", rule)
    assert f"(policy rule {rule})" in _reason(result, "ssl.crt", rule)
    field = rule.replace("-", "_")
    good.desired.write_text(json.dumps({"hostname": good.host, "policy": {field: "warning"}}))
    result = reconcile(good)
    assert result.rc == 0, result.out
    assert _findings(result) == [("ssl.crt", rule, "warning")]
    assert result.json()["artifacts"]["ssl.keystore"]["action"] == "written"


def test_web_pair_needs_server_auth_only(good: Node) -> None:
    before = _stores(good)
    server_only = cert("master.example.com", good.ca, ca=False, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    write(good.ssl_dir / "ssl-web.key", server_only.key_pem(), 0o600)
    write(good.ssl_dir / "ssl-web.crt", server_only.cert_pem())
    result = reconcile(good)
    assert result.rc == 0 and _findings(result) == [], result.out
    client_only = cert("master.example.com", good.ca, ca=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    write(good.ssl_dir / "ssl-web.key", client_only.key_pem(), 0o600)
    write(good.ssl_dir / "ssl-web.crt", client_only.cert_pem())
    before = _stores(good)
    result = _refused_and_kept(good, before, "ssl-web.crt", "key-usage", stores=WEB_STORES)
    assert "has an extendedKeyUsage without serverAuth" in _reason(result, "ssl-web.crt", "key-usage")


def test_a_ca_without_keycertsign_is_not_trusted(good: Node) -> None:
    odd = cert("Odd CA", ku=NO_CERTSIGN_KU)
    write(good.ssl_dir / "authorities" / "odd.crt", odd.cert_pem())
    write(good.ssl_dir / "authorities" / "odd-peer.crt", cert("x.example.com", odd, ca=False).cert_pem())
    result = reconcile(good)
    assert ("authorities/odd.crt", "not-a-ca", "error") in _findings(result)
    assert "has keyUsage without keyCertSign" in _reason(result, "authorities/odd.crt", "not-a-ca")
    assert ("authorities/odd-peer.crt", "untrusted", "error") in _findings(result)
    assert set(keytool_list(good.ssl_dir / "authorities.jks")) == {"ca.master.example.com", "master.example.com"}


# --- self-signed web certificates ---------------------------------------------------------------------


def test_self_signed_web_certificate_is_unverified_unless_its_root_is_trusted(good: Node) -> None:
    web = cert("master.example.com", ku=None, eku=None, sans=["master.example.com"])  # like openssl req -x509
    write(good.ssl_dir / "ssl-web.key", web.key_pem(), 0o600)
    write(good.ssl_dir / "ssl-web.crt", web.cert_pem())
    result = reconcile(good)
    assert result.rc == 0 and _findings(result) == [("ssl-web.crt", "unverified", "warning")], result.out
    assert "is self-signed and not in the trust sources" in _reason(result, "ssl-web.crt", "unverified")
    assert result.json()["artifacts"]["ssl-web.keystore"]["action"] == "written"
    write(good.ssl_dir / "authorities" / "web-root.crt", web.cert_pem())
    result = reconcile(good)
    assert result.rc == 0 and _findings(result) == [], result.out


def test_web_install_of_a_self_signed_certificate_says_unverified(good: Node, tmp_path: Path) -> None:
    web = cert("master.example.com", ku=None, eku=None, sans=["master.example.com"])
    key = write(tmp_path / "web.key", web.key_pem(), 0o600)
    crt = write(tmp_path / "web.crt", web.cert_pem())
    result = run_cli("web", "install", "--ssl-dir", good.ssl_dir, "--desired-state", good.desired, "--cert", crt,
                     "--key", key)
    assert result.rc == 0, result.out + result.err
    assert "UNVERIFIED" in result.out and "verified against its issuer" not in result.out


# --- aliases --------------------------------------------------------------------------------------------


def test_case_clash_keeps_the_cluster_ca(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, ca_file="ca.crt")
    rogue = make_ca("Rogue CA")
    write(node.ssl_dir / "authorities" / "CA.crt", rogue.cert_pem())  # sorts first, and JKS lower-cases
    write(node.ssl_dir / "authorities" / "via-rogue.crt", make_host(rogue, "v.example.com").cert_pem())
    result = reconcile(node)
    assert result.rc == 1
    assert ("authorities/CA.crt", "duplicate-alias", "error") in _findings(result)
    assert "authorities/ca.crt" in _reason(result, "authorities/CA.crt", "duplicate-alias")
    assert ("authorities/via-rogue.crt", "untrusted", "error") in _findings(result)  # a loser is no anchor
    assert result.json()["artifacts"]["ssl.keystore"]["action"] == "written"
    store = node.ssl_dir / "authorities.jks"
    assert set(keytool_list(store)) == {"ca", "master.example.com"}
    assert keytool_sha256(store, "ca") == ca.fingerprint()


def test_suffix_aliases_never_take_a_file_owned_alias(good: Node) -> None:
    auth = good.ssl_dir / "authorities"
    one, two = make_ca("Bundle One"), make_ca("Bundle Two")
    peer = make_host(good.ca, "peer.example.com")
    write(auth / "pair.crt", one.cert_pem() + two.cert_pem())
    write(auth / "pair-2.crt", peer.cert_pem())
    result = reconcile(good)
    assert ("authorities/pair.crt", "no-hash-link", "warning") in _findings(result)
    assert ("authorities/pair.crt", "alias-suffix", "warning") in _findings(result)
    assert "alias 'pair-2-2': pair-2 is authorities/pair-2.crt's alias" in _reason(result, "authorities/pair.crt",
                                                                                   "alias-suffix")
    store = auth.parent / "authorities.jks"
    assert {"pair", "pair-2", "pair-2-2"} <= set(keytool_list(store))
    assert keytool_sha256(store, "pair-2") == peer.fingerprint()
    assert keytool_sha256(store, "pair-2-2") == two.fingerprint()


def test_same_certificate_in_two_files_is_reported_as_rehash_does(good: Node) -> None:
    auth = good.ssl_dir / "authorities"
    write(auth / "zz-copy.crt", good.ca.cert_pem())
    result = reconcile(good)
    assert result.rc == 0
    assert _findings(result) == [("authorities/zz-copy.crt", "duplicate-certificate", "warning")]
    assert "authorities/ca.master.example.com.crt" in _reason(result, "authorities/zz-copy.crt",
                                                              "duplicate-certificate")
    links = [p for p in auth.iterdir() if p.is_symlink()]
    assert [p.readlink().name for p in links] == ["ca.master.example.com.crt"]
    assert set(keytool_list(auth.parent / "authorities.jks")) == {"ca.master.example.com", "master.example.com"}
    copy = good.root / "rehash-copy"
    copy.mkdir()
    for path in auth.iterdir():
        if not path.is_symlink():
            write(copy / path.name, path.read_bytes())
    rehash = subprocess.run(["openssl", "rehash", "-v", str(copy)], capture_output=True, text=True, timeout=60)
    assert "skipping duplicate certificate in zz-copy.crt" in rehash.stderr + rehash.stdout, rehash.stderr
    assert sorted(p.readlink().name for p in copy.iterdir() if p.is_symlink()) == ["ca.master.example.com.crt"]


def test_web_install_applies_the_policy_and_its_lowering(good: Node, tmp_path: Path) -> None:
    client_only = cert("master.example.com", good.ca, ca=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    key = write(tmp_path / "web.key", client_only.key_pem(), 0o600)
    crt = write(tmp_path / "web.crt", client_only.cert_pem())
    before = snapshot(good.ssl_dir)
    args = ("web", "install", "--ssl-dir", good.ssl_dir, "--desired-state", good.desired, "--cert", crt, "--key", key)
    result = run_cli(*args)
    assert result.rc == 1 and "(policy rule key-usage)" in result.err and "nothing installed" in result.err, result.err
    assert snapshot(good.ssl_dir) == before
    good.desired.write_text(json.dumps({"hostname": good.host, "policy": {"key_usage": "warning"}}))
    result = run_cli(*args)
    assert result.rc == 0 and "verified against its issuer" in result.out, result.out + result.err
    assert (good.ssl_dir / "ssl-web.crt").read_bytes() == client_only.cert_pem()


def test_a_trust_file_named_like_this_host_is_named_in_the_clash(good: Node) -> None:
    other = make_host(good.ca, "impostor.example.com")
    write(good.ssl_dir / "authorities" / "Master.Example.com.crt", other.cert_pem())
    result = reconcile(good)
    assert result.rc == 1
    reason = _reason(result, "ssl.crt", "duplicate-alias")
    assert "authorities/Master.Example.com.crt" in reason, reason
    assert keytool_sha256(good.ssl_dir / "authorities.jks", "master.example.com") == good.ssl.fingerprint()
