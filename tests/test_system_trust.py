"""Issue 24: a public web certificate verified against the system's trust store, never the cluster's.

A made-up "public" root sits in a test system-trust file or directory (named by ``system_trust`` in the
desired state, or found as OpenSSL finds it through SSL_CERT_FILE / SSL_CERT_DIR). A web pair from it is
``ok`` and says which root verified it; authorities/, its hash links, authorities.jks (keytool) and the
trust fingerprint (``reconcile --json``, the daemon's ``/health``) stay exactly as they were. With the
setting off it is ``unverified`` as before, and the ``ssl`` pair (cluster mutual TLS) is never verified
through the system store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID
from daemonkit import RunningDaemon, http_get, wait_until

import trustkit
from conftest import keytool_list, openssl, reconcile, run_cli, snapshot
from pkitools import Issued, Node, make_ca, make_host, seed_node, write

HOST = "master.example.com"


@pytest.fixture(scope="module")
def public_root() -> Issued:
    return make_ca("Made-up Public Root R1")


@pytest.fixture(scope="module")
def public_web(public_root: Issued) -> tuple[Issued, Issued]:
    """A public-style chain: root -> intermediate -> leaf; the leaf file carries the intermediate."""
    inter = make_ca("Made-up Public Issuing CA", issuer=public_root)
    return inter, make_host(inter, HOST)


def _desired(node: Node, **fields: object) -> None:
    node.desired.write_text(json.dumps({"hostname": HOST, **fields}))


def _drop_web(node: Node, public_web: tuple[Issued, Issued]) -> None:
    inter, leaf = public_web
    write(node.ssl_dir / "ssl-web.key", leaf.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", leaf.cert_pem() + inter.cert_pem())


def _web_findings(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["file"].startswith("ssl-web")]


def _note(report: dict, artifact: str) -> str:
    return report["artifacts"][artifact]["message"]


def _cluster_trust(node: Node) -> tuple[dict, dict]:
    """What the cluster trusts, read by independent tools: authorities/ (files and hash links) and keytool."""
    return snapshot(node.ssl_dir / "authorities"), keytool_list(node.ssl_dir / "authorities.jks")


def _system_file(tmp_path: Path, root: Issued) -> Path:
    """A system bundle in the style of ca-certificates.crt: an unrelated root, then ours."""
    return write(tmp_path / "system" / "ca-bundle.crt", make_ca("Some Other Root").cert_pem() + root.cert_pem())


def _system_dir(tmp_path: Path, root: Issued) -> Path:
    """A hash directory in Debian's style: <hash>.0 -> name.pem, made by openssl rehash."""
    directory = tmp_path / "system-dir"
    write(directory / "made-up-public-root.pem", root.cert_pem())
    openssl("rehash", directory)
    assert any(p.is_symlink() and p.name.endswith(".0") for p in directory.iterdir())
    return directory


def _verified_and_cluster_untouched(node: Node, public_web: tuple[Issued, Issued], env: dict | None = None) -> dict:
    before = reconcile(node) if env is None else run_cli(*_args(node), env=env)
    assert before.rc == 0, before.out + before.err
    trust_before, cluster_before = before.json()["trust"], _cluster_trust(node)
    _drop_web(node, public_web)
    after = reconcile(node) if env is None else run_cli(*_args(node), env=env)
    assert after.rc == 0, after.out + after.err
    report = after.json()
    assert _web_findings(report) == [], report["findings"]
    assert "verified via system trust: CN=Made-up Public Root R1" in _note(report, "ssl-web.keystore")
    assert report["trust"] == trust_before  # the fingerprint and the authorities' aliases
    assert _cluster_trust(node) == cluster_before  # files, hash links, authorities.jks by keytool
    # the web stores hold the public chain (keytool), and openssl agrees it needs the public root
    assert keytool_list(node.ssl_dir / "ssl-web.keystore") == {"ssl-web": ("PrivateKeyEntry", 2)}
    cert = node.ssl_dir / "ssl-web.crt"
    assert openssl("verify", "-CApath", node.ssl_dir / "authorities", "-untrusted", cert, cert, check=False).returncode
    return report


def _args(node: Node) -> list[str | Path]:
    return ["reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json"]


def test_system_trust_file_setting_verifies_web_pair_only(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)
    bundle = _system_file(tmp_path, public_root)
    _desired(node, system_trust={"file": str(bundle)})
    _verified_and_cluster_untouched(node, public_web)
    inter, leaf = public_web
    openssl("verify", "-CAfile", bundle, "-untrusted", inter_file(tmp_path, inter), leaf_file(tmp_path, leaf))


def inter_file(tmp_path: Path, inter: Issued) -> Path:
    return write(tmp_path / "inter.pem", inter.cert_pem())


def leaf_file(tmp_path: Path, leaf: Issued) -> Path:
    return write(tmp_path / "leaf.pem", leaf.cert_pem())


def test_system_trust_dir_setting(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)
    _desired(node, system_trust={"dir": str(_system_dir(tmp_path, public_root))})
    _verified_and_cluster_untouched(node, public_web)


def test_found_as_openssl_finds_it_ssl_cert_file(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)  # the seed desired state: no system_trust, ssl-web's default
    env = {"SSL_CERT_FILE": str(_system_file(tmp_path, public_root)), "SSL_CERT_DIR": str(tmp_path / "none")}
    _verified_and_cluster_untouched(node, public_web, env)


def test_found_as_openssl_finds_it_ssl_cert_dir(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)
    env = {"SSL_CERT_FILE": str(tmp_path / "none.pem"), "SSL_CERT_DIR": str(_system_dir(tmp_path, public_root))}
    _verified_and_cluster_untouched(node, public_web, env)


def test_setting_off_is_unverified_as_before(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)
    bundle = _system_file(tmp_path, public_root)
    web = {
        "name": "ssl-web",
        "key": "ssl-web.key",
        "cert": "ssl-web.crt",
        "keystore": "ssl-web.keystore",
        "pkcs12": "ssl-web.p12",
        "verify": "if-available",
        "fallback": "ssl",
        "verify_with": ["trust-sources"],
    }
    ssl = {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore", "pkcs12": "ssl.p12"}
    _desired(node, system_trust={"file": str(bundle)}, pairs=[ssl, web])
    _drop_web(node, public_web)
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    report = result.json()
    codes = [(f["level"], f["code"]) for f in _web_findings(report)]
    assert codes == [("warning", "unverified")], report["findings"]
    assert "unverified" in _note(report, "ssl-web.keystore")
    # and with the default but an empty system store (SSL_CERT_FILE/DIR naming nothing): unverified too
    _desired(node)
    empty = {"SSL_CERT_FILE": str(tmp_path / "none.pem"), "SSL_CERT_DIR": str(tmp_path / "none")}
    report = run_cli(*_args(node), env=empty).json()
    assert [f["code"] for f in _web_findings(report)] == ["unverified"], report["findings"]
    assert "nor in the system trust" in _web_findings(report)[0]["reason"]


def test_ssl_pair_never_trusts_the_system_store(tmp_path: Path, ca: Issued, public_root: Issued):
    node = seed_node(tmp_path / "n", HOST, ca)
    bundle = _system_file(tmp_path, public_root)
    _desired(node, system_trust={"file": str(bundle)})
    first = reconcile(node)
    assert first.rc == 0, first.out + first.err
    kept = (node.ssl_dir / "ssl.keystore").read_bytes()
    public_host = make_host(public_root, HOST)
    write(node.ssl_dir / "ssl.key", public_host.key_pem(), 0o600)
    write(node.ssl_dir / "ssl.crt", public_host.cert_pem())
    result = reconcile(node)
    report = result.json()
    assert result.rc == 1, result.out
    refused = [f for f in report["findings"] if f["file"] == "ssl.crt" and f["level"] == "error"]
    assert [f["code"] for f in refused] == ["untrusted"], report["findings"]
    assert (node.ssl_dir / "ssl.keystore").read_bytes() == kept  # kept last good
    # and a desired state asking for it is refused at load (exit 2)
    ssl = {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore", "verify_with": ["system"]}
    _desired(node, pairs=[ssl])
    refused_config = reconcile(node)
    assert refused_config.rc == 2 and "verify_with" in refused_config.err, refused_config.out + refused_config.err


def test_store_links_are_not_followed_out_and_writable_files_are_left_out(
    tmp_path: Path, ca: Issued, public_root: Issued, public_web
):
    """A hash link in the system dir pointing outside it (and outside the distributions' CA dirs) is not
    followed; a file others could have written is not trusted. Either way the web pair stays unverified."""
    node = seed_node(tmp_path / "n", HOST, ca)
    directory = tmp_path / "sysdir"
    elsewhere = write(tmp_path / "elsewhere" / "root.pem", public_root.cert_pem())
    hashed = openssl("x509", "-noout", "-subject_hash", "-in", elsewhere).stdout.strip()
    directory.mkdir()
    os.symlink(elsewhere, directory / f"{hashed}.0")
    _desired(node, system_trust={"dir": str(directory)})
    _drop_web(node, public_web)
    report = reconcile(node).json()
    codes = {(f["file"], f["code"]) for f in report["findings"]}
    assert (f"{directory}/{hashed}.0", "symlink-escape") in codes, report["findings"]
    assert ("ssl-web.crt", "unverified") in codes, report["findings"]
    (directory / f"{hashed}.0").unlink()
    write(directory / f"{hashed}.0", public_root.cert_pem(), 0o666)
    os.chmod(directory / f"{hashed}.0", 0o666)
    report = reconcile(node).json()
    codes = {(f["file"], f["code"]) for f in report["findings"]}
    assert (f"{directory}/{hashed}.0", "unreadable") in codes, report["findings"]
    assert ("ssl-web.crt", "unverified") in codes, report["findings"]
    os.chmod(directory / f"{hashed}.0", 0o644)  # now a file only this user could write: trusted
    report = reconcile(node).json()
    assert _web_findings(report) == [], report["findings"]


def test_web_install_says_verified_via_system_trust(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)
    _desired(node, system_trust={"file": str(_system_file(tmp_path, public_root))})
    assert reconcile(node).rc == 0
    cluster_before = _cluster_trust(node)
    inter, leaf = public_web
    key = write(tmp_path / "in" / "web.key", leaf.key_pem(), 0o600)
    cert = write(tmp_path / "in" / "web.crt", leaf.cert_pem())
    chain = write(tmp_path / "in" / "chain.pem", inter.cert_pem())
    result = run_cli(
        "web",
        "install",
        "--ssl-dir",
        node.ssl_dir,
        "--desired-state",
        node.desired,
        "--key",
        key,
        "--cert",
        cert,
        "--chain",
        chain,
    )
    assert result.rc == 0, result.out + result.err
    assert "verified via system trust: CN=Made-up Public Root R1" in result.out + result.err
    assert "UNVERIFIED" not in result.out + result.err
    assert _cluster_trust(node) == cluster_before


def test_daemon_health_fingerprint_unchanged(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    node = seed_node(tmp_path / "n", HOST, ca)
    _desired(node, system_trust={"file": str(_system_file(tmp_path, public_root))})
    daemon = RunningDaemon(node, tmp_path / "d").start()
    try:

        def health() -> dict:
            return json.loads(http_get(daemon.socket)[1])

        first = wait_until(lambda: (d := health())["status"] == "ok" and d, what="first reconcile ok")
        fingerprint = first["trust"]["fingerprint"]
        web_before = (node.ssl_dir / "ssl-web.keystore").read_bytes()
        _drop_web(node, public_web)
        wait_until(lambda: (node.ssl_dir / "ssl-web.keystore").read_bytes() != web_before, what="web store rebuilt")
        doc = wait_until(lambda: (d := health())["status"] == "ok" and d, what="ok after the public web pair")
        assert doc["trust"]["fingerprint"] == fingerprint, doc
        assert keytool_list(node.ssl_dir / "ssl-web.keystore") == {"ssl-web": ("PrivateKeyEntry", 2)}
    finally:
        daemon.stop()


def test_policy_rules_still_apply_via_system_trust(tmp_path: Path, ca: Issued, public_root: Issued, public_web):
    """Verified via the system store is still a verified path: a leaf whose extendedKeyUsage forbids
    serverAuth is refused (key-usage), its stores kept last good; a bad signature under a system root is
    refused (untrusted), not waved through as unverified."""
    node = seed_node(tmp_path / "n", HOST, ca)
    _desired(node, system_trust={"file": str(_system_file(tmp_path, public_root))})
    assert reconcile(node).rc == 0
    kept = (node.ssl_dir / "ssl-web.keystore").read_bytes()
    inter, _ = public_web
    client_only = trustkit.cert(HOST, inter, ca=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    write(node.ssl_dir / "ssl-web.key", client_only.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", client_only.cert_pem() + inter.cert_pem())
    result = reconcile(node)
    assert result.rc == 1, result.out
    assert [(f["level"], f["code"]) for f in _web_findings(result.json())] == [("error", "key-usage")], result.out
    assert (node.ssl_dir / "ssl-web.keystore").read_bytes() == kept
    impostor = make_ca("Made-up Public Root R1")  # the same name as the system's root, another key
    forged = make_host(impostor, HOST)
    write(node.ssl_dir / "ssl-web.key", forged.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", forged.cert_pem())
    result = reconcile(node)
    assert result.rc == 1, result.out
    assert [(f["level"], f["code"]) for f in _web_findings(result.json())] == [("error", "untrusted")], result.out
    assert (node.ssl_dir / "ssl-web.keystore").read_bytes() == kept
