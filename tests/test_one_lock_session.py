"""One lock session per command (issue 23): `web install`, `web rollback`, `pki install-bundle` and `acme renew`
change the sources and rebuild the stores under one acquisition of the writer lock, and run their hooks
before they exit, daemon or none. The web commands work on the desired state's web pair, whatever its
file names, and judge it for that pair's own TLS purposes.

The gap between two lock sessions is seen deterministically, not raced for: lockwatchkit blocks on the lock
file with ``flock``, so the kernel wakes it the instant the command lets go; it freezes the command, takes the
real writer lock as a writer slipping in would, and copies the ssl dir as that writer finds it. Every such
copy must already hold stores built from the sources the command wrote.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from acmekit import Pebble, acme_block
from bundlekit import OLD_CA, host_bundle, install, make_rotation
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from conftest import PASSWORD, keytool_list, keytool_sha256, openssl, run_cli, snapshot
from pkitools import Issued, Node, make_host, name, new_key, seed_node, write

HOST = "master.example.com"
WEB_STORES = ["ssl-web.keystore", "ssl-web.p12"]
WATCHER = Path(__file__).resolve().parent / "lockwatchkit.py"


def hook(directory: Path, label: str) -> tuple[Path, Path]:
    """A hook that appends SSLRECONCILER_CHANGED to its log."""
    directory.mkdir(parents=True, exist_ok=True)
    log, script = directory / f"{label}.log", directory / f"{label}.sh"
    script.write_text(f'#!/bin/sh\necho "$SSLRECONCILER_CHANGED" >> "{log}"\n')
    script.chmod(0o755)
    return script, log


def cert_sha256(crt: Path) -> str:
    out = openssl("x509", "-in", crt, "-noout", "-fingerprint", "-sha256").stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def p12_sha256(p12: Path) -> str:
    """The key entry's certificate in a PKCS#12 store, as openssl reads it."""
    pem = openssl("pkcs12", "-in", p12, "-passin", f"pass:{PASSWORD}", "-nokeys", "-clcerts").stdout
    return openssl("x509", "-noout", "-fingerprint", "-sha256", stdin=pem.encode()).stdout.split("=", 1)[1].strip() \
        .replace(":", "").lower()


def watched(ssl_dir: Path, out: Path, *args: str | Path) -> tuple[dict, list[Path]]:
    """``sslreconciler ARGS`` under lockwatchkit: its result and the ssl dir as found at each of its releases."""
    command = [sys.executable, "-m", "sslreconciler", *map(str, args)]
    subprocess.run([sys.executable, WATCHER, ssl_dir, out, "--", *command], check=True, timeout=300)
    result = json.loads((out / "watch.json").read_text())
    return result, sorted(out.glob("release-*"), key=lambda p: int(p.name.split("-")[1]))


def common(node: Node) -> list[str | Path]:
    return ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired]


def test_web_install_keeps_the_lock_from_the_new_pair_to_the_stores_built_from_it(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    script, log = hook(tmp_path / "hooks", "web")
    node.desired.write_text(json.dumps({"hostname": HOST, "hooks": [
        {"name": "web", "after": WEB_STORES, "command": [str(script)]}]}))
    first = run_cli("reconcile", *common(node))
    assert first.rc == 0, first.out + first.err
    log.unlink()
    new = make_host(ca, HOST)
    key = write(tmp_path / "work" / "new.key", new.key_pem(), 0o600)
    crt = write(tmp_path / "work" / "new.crt", new.cert_pem())

    result, releases = watched(node.ssl_dir, tmp_path / "watch", "web", "install", *common(node),
                               "--cert", crt, "--key", key)
    assert result["rc"] == 0, result
    seen_new = [r for r in releases if cert_sha256(r / "ssl-web.crt") == new.fingerprint()]
    assert seen_new, result  # the lock was let go after the new pair was in place
    for release in seen_new:  # what a writer slipping in would find: stores already built from the new pair
        assert keytool_sha256(release / "ssl-web.keystore", "ssl-web") == new.fingerprint(), release.name
        assert p12_sha256(release / "ssl-web.p12") == new.fingerprint(), release.name
    # A miss is the command holding the lock again after it let go (before the watcher froze it): a second
    # session. One session lets go once and never takes it again.
    assert result["missed"] == 0, result
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()
    assert log.read_text().split() == WEB_STORES  # its hook ran, once, before the command exited

    # web rollback: the old pair and the stores built from it, again in one session
    back, releases = watched(node.ssl_dir, tmp_path / "watch-back", "web", "rollback", *common(node))
    assert back["rc"] == 0 and back["missed"] == 0, back
    assert node.web is not None
    for release in releases:
        if cert_sha256(release / "ssl-web.crt") == node.web.fingerprint():
            assert keytool_sha256(release / "ssl-web.keystore", "ssl-web") == node.web.fingerprint(), release.name
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == node.web.fingerprint()
    assert len(log.read_text().split()) == 2 * len(WEB_STORES)


def test_install_bundle_retires_a_ca_and_rebuilds_the_truststore_in_one_session(tmp_path: Path) -> None:
    bundles = make_rotation(tmp_path / "pki")
    node = Node(tmp_path / "node", "sec1.example.com", None, None)  # type: ignore[arg-type]  # bundles bring it
    node.root.mkdir()
    node.desired.write_text(json.dumps({"hostname": node.host}))
    for step in ("pre", "both", "reissued"):
        done = install(node, bundles[step])
        assert done.rc == 0, done.out + done.err
    old_alias = OLD_CA.lower()
    assert old_alias in keytool_list(node.ssl_dir / "authorities.jks")

    result, releases = watched(node.ssl_dir, tmp_path / "watch", "pki", "install-bundle", bundles["retired"],
                               *common(node), "--state-dir", node.root / "state")
    assert result["rc"] == 0, result
    assert f"removed authorities/{OLD_CA}.crt" in result["out"], result
    retired = [r for r in releases if not (r / "authorities" / f"{OLD_CA}.crt").exists()]
    assert retired, result
    for release in retired:  # the CA file gone, and the truststore already without it
        assert old_alias not in keytool_list(release / "authorities.jks"), release.name
    assert result["missed"] == 0, result  # never a second session
    assert old_alias not in keytool_list(node.ssl_dir / "authorities.jks")


def test_acme_renew_without_a_daemon_rebuilds_the_web_stores_and_runs_the_hooks(
    tmp_path: Path, ca: Issued, pebble: Pebble
) -> None:
    node = seed_node(tmp_path / "n", "pbx.example.com", ca)
    script, log = hook(tmp_path / "hooks", "web")
    desired = {"hostname": node.host, "hooks": [{"name": "web", "after": WEB_STORES, "command": [str(script)]}]}
    node.desired.write_text(json.dumps(desired))
    assert run_cli("reconcile", *common(node)).rc == 0  # the web stores follow the ssl pair
    log.unlink()
    desired["acme"] = acme_block(pebble, [node.host], {"listen": f"127.0.0.1:{pebble.http_port}"})
    node.desired.write_text(json.dumps(desired))

    renewed = run_cli("acme", "renew", "--json", *common(node), timeout=300)
    assert renewed.rc == 0, renewed.out + renewed.err
    issued = cert_sha256(node.ssl_dir / "ssl-web.crt")
    assert issued != node.ssl.fingerprint()
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == issued
    assert p12_sha256(node.ssl_dir / "ssl-web.p12") == issued
    assert log.exists() and log.read_text().split() == WEB_STORES  # the hooks ran before it exited
    doc = renewed.json()
    assert doc["record"]["last_result"] == "issued"  # acme's own document, as before
    assert doc["reconcile"]["status"] in ("ok", "warning"), doc["reconcile"]  # and the reconcile it ran

    text = run_cli("acme", "renew", "--force", *common(node), timeout=300)
    assert text.rc == 0, text.out + text.err
    assert "installed" in text.out and "valid until" in text.out, text.out
    assert "\\n" not in text.out and "ssl-web.keystore" in text.out, text.out  # the reconcile's report, line by line
    again = cert_sha256(node.ssl_dir / "ssl-web.crt")
    assert again != issued and keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == again


def test_web_install_and_rollback_follow_the_desired_states_file_names(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    pairs = [
        {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore", "pkcs12": "ssl.p12"},
        {"name": "ssl-web", "key": "www.key", "cert": "www.crt", "keystore": "www.keystore", "pkcs12": "www.p12",
         "verify": "if-available", "fallback": "ssl"},
    ]
    node.desired.write_text(json.dumps({"hostname": HOST, "pairs": pairs}))
    assert run_cli("reconcile", *common(node)).rc == 0
    assert keytool_sha256(node.ssl_dir / "www.keystore", "ssl-web") == node.ssl.fingerprint()  # the fallback
    new = make_host(ca, HOST)
    key = write(tmp_path / "work" / "new.key", new.key_pem(), 0o600)
    crt = write(tmp_path / "work" / "new.crt", new.cert_pem())

    done = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    assert done.rc == 0, done.out + done.err
    assert cert_sha256(node.ssl_dir / "www.crt") == new.fingerprint()
    assert keytool_sha256(node.ssl_dir / "www.keystore", "ssl-web") == new.fingerprint()
    assert not (node.ssl_dir / "ssl-web.key").exists() and not (node.ssl_dir / "ssl-web.crt").exists()
    assert (node.ssl_dir / "www.previous-was-ssl-pair").exists()

    back = run_cli("web", "rollback", *common(node))
    assert back.rc == 0, back.out + back.err
    assert not (node.ssl_dir / "www.key").exists() and not (node.ssl_dir / "www.crt").exists()
    assert keytool_sha256(node.ssl_dir / "www.keystore", "ssl-web") == node.ssl.fingerprint()

    # web csr keeps its pending key beside the pair's own key: <key>.pending, which install then takes
    csr = run_cli("web", "csr", *common(node), "--subject", f"/CN={HOST}", "-o", tmp_path / "www.csr")
    assert csr.rc == 0, csr.out + csr.err
    assert (node.ssl_dir / "www.key.pending").exists() and not (node.ssl_dir / "ssl-web.key.pending").exists()


def _server_only(ca: Issued, host: str) -> Issued:
    """A certificate whose extendedKeyUsage allows serverAuth alone."""
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name(host)).issuer_name(ca.cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


@pytest.mark.parametrize("purposes, installed", [(["server"], True), (["server", "client"], False)])
def test_web_install_judges_the_pair_for_its_own_purposes(
    tmp_path: Path, ca: Issued, purposes: list[str], installed: bool
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    pairs = [
        {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore"},
        {"name": "ssl-web", "key": "ssl-web.key", "cert": "ssl-web.crt", "keystore": "ssl-web.keystore",
         "fallback": "ssl", "purposes": purposes},
    ]
    node.desired.write_text(json.dumps({"hostname": HOST, "pairs": pairs}))
    new = _server_only(ca, HOST)
    key = write(tmp_path / "work" / "new.key", new.key_pem(), 0o600)
    crt = write(tmp_path / "work" / "new.crt", new.cert_pem())
    done = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    if installed:
        assert done.rc == 0, done.out + done.err
        assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()
    else:
        assert done.rc == 1 and "nothing installed" in done.err, done.out + done.err
        assert not (node.ssl_dir / "ssl-web.crt").exists()


def test_install_bundle_follows_the_desired_states_file_names(tmp_path: Path) -> None:
    host = "sec1.example.com"
    bundle = host_bundle(tmp_path, host)
    node = Node(tmp_path / "node", host, None, None)  # type: ignore[arg-type]  # the bundle brings it
    node.root.mkdir()
    pairs = [
        {"name": "ssl", "key": "host.key", "cert": "host.crt", "keystore": "host.keystore"},
        {"name": "ssl-web", "key": "www.key", "cert": "www.crt", "keystore": "www.keystore", "fallback": "ssl"},
    ]
    node.desired.write_text(json.dumps({"hostname": host, "pairs": pairs, "truststore": {"sources": ["cas"]}}))

    done = install(node, bundle)
    assert done.rc == 0, done.out + done.err
    ssl = node.ssl_dir
    assert sorted(p.name for p in ssl.iterdir() if p.suffix in (".key", ".crt")) == [
        "host.crt", "host.key", "www.crt", "www.key"]
    assert (ssl / "cas" / "ca.cluster.example.com.crt").exists() and not (ssl / "authorities").exists()
    assert keytool_sha256(ssl / "host.keystore", "ssl") == cert_sha256(ssl / "host.crt")
    assert keytool_sha256(ssl / "www.keystore", "ssl-web") == cert_sha256(ssl / "www.crt")
    assert "ca.cluster.example.com" in keytool_list(ssl / "authorities.jks")
    assert "cas/ca.cluster.example.com.crt" in done.out, done.out


def test_a_refused_change_reconciles_nothing_and_lets_go_of_the_lock(tmp_path: Path, ca: Issued) -> None:
    """Not a fix (main refused before its reconcile too): the contract of ``Reconciler.run(change=...)``."""
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    assert run_cli("reconcile", *common(node)).rc == 0
    state = Path(os.environ["SSLRECONCILER_STATE_DIR"])
    before, report = snapshot(node.ssl_dir), (state / "last-report.json").read_bytes()
    other = make_host(ca, HOST)
    key = write(tmp_path / "work" / "other.key", make_host(ca, HOST).key_pem(), 0o600)  # not the cert's key
    crt = write(tmp_path / "work" / "other.crt", other.cert_pem())
    refused = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    assert refused.rc == 1 and "does not match" in refused.err, refused.out + refused.err
    assert refused.out == ""  # no report: nothing was reconciled
    assert snapshot(node.ssl_dir) == before and (state / "last-report.json").read_bytes() == report
    assert not (node.ssl_dir / ".sslreconciler.lock").exists()  # let go: the next writer goes straight in
    assert run_cli("reconcile", *common(node)).rc == 0
