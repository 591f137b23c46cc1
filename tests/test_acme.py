"""`acme renew` / `acme status` against a real ACME server (pebble) doing real HTTP-01 validation.

Checked with independent tools: openssl for the chain and the key, keytool and a Java TLS client
trusting only pebble's root for the stores the daemon rebuilds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import stat
import subprocess
import time
from pathlib import Path

import pytest
from acmekit import BLOCKED, Pebble, WebrootServer, acme_block, free_port, port_answers, wait_until
from daemonkit import RunningDaemon, fingerprint, http_get
from javakit import Pair, assert_handshakes

from conftest import PASSWORD, Result, openssl, run_cli, snapshot
from pkitools import Issued, Node, make_ca, make_host, seed_node, write

HOST = "pbx.example.com"


@pytest.fixture
def pebble_factory(tmp_path: Path):
    started: list[Pebble] = []

    def start(validity_s: int = 90 * 24 * 3600, eab_keys: dict[str, str] | None = None) -> Pebble:
        pebble = Pebble(tmp_path / f"pebble{len(started)}", validity_s, eab_keys)
        started.append(pebble)
        return pebble.start()

    yield start
    for pebble in started:
        pebble.stop()


@pytest.fixture
def acme_node(tmp_path: Path, ca: Issued) -> Node:
    return seed_node(tmp_path / "node", HOST, ca)


def set_acme(node: Node, block: dict | None, **top) -> None:
    node.desired.write_text(json.dumps({"hostname": node.host, "acme": block, **top}))


def acme(node: Node, *args: str | Path) -> Result:
    return run_cli("acme", *args, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, timeout=300)


def leaf_fingerprint(path: Path) -> str:
    out = openssl("x509", "-in", path, "-noout", "-fingerprint", "-sha256").stdout
    return out.split("=", 1)[1].strip().replace(":", "").lower()


def sans(path: Path) -> str:
    return openssl("x509", "-in", path, "-noout", "-ext", "subjectAltName").stdout


def check_pair(ssl_dir: Path, root: Path) -> None:
    """The installed pair as openssl sees it: chain to pebble's root, key matches, key 0600."""
    crt, key = ssl_dir / "ssl-web.crt", ssl_dir / "ssl-web.key"
    openssl("verify", "-CAfile", root, "-untrusted", crt, crt)
    assert openssl("x509", "-in", crt, "-noout", "-pubkey").stdout == openssl("pkey", "-in", key, "-pubout").stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def acme_status_without_a_certificate(node: Node, webroot: Path) -> Result:
    """`acme status` before the ACME server is there (it asks no server): due, no certificate yet."""
    set_acme(node, {"directory": f"https://localhost:{free_port()}/dir", "names": [HOST],
                    "challenge": {"webroot": str(webroot)}})
    return acme(node, "status")


@pytest.mark.slow
def test_webroot_first_issuance_then_noop_then_renewal(tmp_path: Path, acme_node: Node, pebble_factory) -> None:
    # The renewal point is where a third of the certificate's life is left. The life is made just long enough
    # for the steps between the issuance and the check that nothing is due yet (a few commands like the
    # `acme status` timed here, on this machine, now): 45 times that, so the point comes 30 of them after
    # the issuance (at least 8 s), instead of a fixed minute that an idle machine needs and a loaded one may
    # not get.
    webroot = tmp_path / "www"
    started = time.monotonic()
    offline = acme_status_without_a_certificate(acme_node, webroot)
    validity_s = max(12, math.ceil(45 * (time.monotonic() - started)))
    assert offline.rc == 1 and "no web certificate of its own" in offline.out, offline.out + offline.err
    print(f"certificate life: {validity_s} s")
    pebble = pebble_factory(validity_s=validity_s)
    server = WebrootServer(webroot, pebble.http_port)
    try:
        set_acme(acme_node, acme_block(pebble, [HOST], {"webroot": str(webroot)}))
        first = acme(acme_node, "renew")
        assert first.rc == 0, first.out + first.err
        assert "no web certificate of its own" in first.out and "installed CN=" in first.out
        issued = snapshot(acme_node.ssl_dir)
        noop = acme(acme_node, "renew")
        assert noop.rc == 0 and "nothing to do: renewal point" in noop.out, noop.out + noop.err
        assert snapshot(acme_node.ssl_dir) == issued
        root = write(tmp_path / "pebble-root.pem", pebble.root_pem())
        check_pair(acme_node.ssl_dir, root)
        assert f"DNS:{HOST}" in sans(acme_node.ssl_dir / "ssl-web.crt")
        assert (acme_node.ssl_dir / "ssl-web.previous-was-ssl-pair").exists()  # rollback goes back to the ssl pair
        assert any(p.startswith("/.well-known/acme-challenge/") for p in server.requests), server.requests
        assert list((webroot / ".well-known" / "acme-challenge").iterdir()) == []  # tokens cleaned up
        state = tmp_path / "state"
        account = state / "acme-account.key"
        assert stat.S_IMODE(account.stat().st_mode) == 0o600
        account_bytes = account.read_bytes()
        status = acme(acme_node, "status", "--json")
        assert status.rc == 0, status.out + status.err
        doc = status.json()
        assert doc["certificate"]["issued_by_acme"] and doc["record"]["last_result"] == "nothing-to-do"
        due = dt.datetime.fromisoformat(doc["renewal_due"].replace("Z", "+00:00"))
        first_fp = leaf_fingerprint(acme_node.ssl_dir / "ssl-web.crt")
        old_key, old_crt = ((acme_node.ssl_dir / n).read_bytes() for n in ("ssl-web.key", "ssl-web.crt"))
        wait_until(lambda: dt.datetime.now(dt.UTC) > due + dt.timedelta(seconds=1), validity_s + 120,
                   f"the renewal point (life {validity_s} s)")
        assert acme(acme_node, "status").rc == 1  # due now
        renewed = acme(acme_node, "renew")
        assert renewed.rc == 0, renewed.out + renewed.err
        assert "has passed" in renewed.out
        assert leaf_fingerprint(acme_node.ssl_dir / "ssl-web.crt") != first_fp
        assert (acme_node.ssl_dir / "ssl-web.key.previous").read_bytes() == old_key
        assert (acme_node.ssl_dir / "ssl-web.crt.previous").read_bytes() == old_crt
        check_pair(acme_node.ssl_dir, root)
        assert account.read_bytes() == account_bytes  # the same account, reused
    finally:
        server.stop()


@pytest.mark.slow
def test_standalone_issuance_changed_names_and_drop_in(tmp_path: Path, acme_node: Node, pebble: Pebble, ca) -> None:
    listen = {"listen": f"127.0.0.1:{pebble.http_port}"}
    set_acme(acme_node, acme_block(pebble, [HOST], listen))
    first = acme(acme_node, "renew", "--json")
    assert first.rc == 0, first.out + first.err
    assert first.json()["record"]["last_result"] == "issued"
    assert sans(acme_node.ssl_dir / "ssl-web.crt").split("Alternative Name:")[1].split() == [f"DNS:{HOST}"]
    assert not port_answers(pebble.http_port)  # the standalone server lived for the order only
    before = snapshot(acme_node.ssl_dir)
    assert "nothing to do" in acme(acme_node, "renew").out
    assert snapshot(acme_node.ssl_dir) == before

    set_acme(acme_node, acme_block(pebble, [HOST, "www.example.com"], listen))
    changed = acme(acme_node, "renew")
    assert changed.rc == 0 and "does not cover www.example.com" in changed.out, changed.out + changed.err
    names = sans(acme_node.ssl_dir / "ssl-web.crt")
    assert f"DNS:{HOST}" in names and "DNS:www.example.com" in names

    # An admin drops in a certificate of their own (`web install`): it wins until its renewal point...
    admin = make_host(ca, HOST)
    write(tmp_path / "admin.crt", admin.cert_pem())
    write(tmp_path / "admin.key", admin.key_pem(), 0o600)
    assert run_cli("web", "install", "--cert", tmp_path / "admin.crt", "--key", tmp_path / "admin.key",
                   "--ssl-dir", acme_node.ssl_dir, "--desired-state", acme_node.desired).rc == 0
    kept = acme(acme_node, "renew")
    assert kept.rc == 0 and "dropped-in certificate: kept" in kept.out, kept.out + kept.err
    assert leaf_fingerprint(acme_node.ssl_dir / "ssl-web.crt") == admin.fingerprint()
    # ... unless the desired state says ACME replaces it.
    set_acme(acme_node, acme_block(pebble, [HOST, "www.example.com"], listen, drop_in="replace"))
    replaced = acme(acme_node, "renew")
    assert replaced.rc == 0 and "drop_in is replace" in replaced.out, replaced.out + replaced.err
    assert leaf_fingerprint(acme_node.ssl_dir / "ssl-web.crt") != admin.fingerprint()
    assert (acme_node.ssl_dir / "ssl-web.crt.previous").read_bytes() == admin.cert_pem()


@pytest.mark.slow
def test_daemon_rebuilds_web_stores_runs_hook_and_java_trusts_pebble_root(
        tmp_path: Path, acme_node: Node, pebble: Pebble, java_classes: Path) -> None:
    webroot = tmp_path / "www"
    server = WebrootServer(webroot, pebble.http_port)
    marker = tmp_path / "hook-ran"
    hook = {"name": "reload web", "after": ["ssl-web.keystore"],
            "command": ["sh", "-c", f'echo "$SSLRECONCILER_CHANGED" >> {marker}']}
    set_acme(acme_node, acme_block(pebble, [HOST], {"webroot": str(webroot)}), hooks=[hook])
    daemon = RunningDaemon(acme_node, tmp_path / "daemon").start()
    try:
        _, doc = daemon.health()
        seed_fp = fingerprint(doc)
        renewed = run_cli("acme", "renew", "--config", daemon.config, timeout=300)  # the daemon's own settings
        assert renewed.rc == 0, renewed.out + renewed.err
        new_fp = leaf_fingerprint(acme_node.ssl_dir / "ssl-web.crt")
        assert new_fp != seed_fp
        doc = daemon.wait_for(lambda d: fingerprint(d) == new_fp and d.get("acme", {}).get("last_result") == "issued",
                              timeout=120, what="the daemon to rebuild ssl-web.keystore from the ACME pair")
        assert doc["acme"]["renewal_due"] and not doc["acme"]["overdue"]
        assert fingerprint(doc, "ssl-web.p12") == new_fp
        wait_until(lambda: marker.exists() and "ssl-web.keystore" in marker.read_text(), 120, "the hook")
        code, metrics = http_get(daemon.socket, "/metrics")
        assert code == 200
        text = metrics.decode()
        assert "sslreconciler_acme_last_success_timestamp_seconds " in text
        assert "sslreconciler_acme_renewal_due_timestamp_seconds " in text
    finally:
        daemon.close()
        server.stop()
    # A Java client that trusts pebble's root (and nothing else) completes a handshake with a server
    # using the rebuilt ssl-web.keystore (which must carry the intermediate).
    root = write(tmp_path / "pebble-root.pem", pebble.root_pem())
    trust = tmp_path / "pebble-root.jks"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "pebble-root", "-file", str(root),
                    "-keystore", str(trust), "-storepass", PASSWORD, "-storetype", "JKS"],
                   check=True, capture_output=True, timeout=120)
    pair = Pair("web server, client trusting pebble's root", acme_node.ssl_dir / "ssl-web.keystore",
                acme_node.ssl_dir / "authorities.jks", acme_node.ssl_dir / "ssl.keystore", trust)
    assert_handshakes(java_classes, [pair], {pair.name: (f"CN={HOST}", f"CN={HOST}")})


@pytest.mark.slow
def test_pebble_down_changes_nothing_backs_off_and_status_warns_when_overdue(tmp_path: Path, ca) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    # An admin's certificate 80 days into 90: its renewal point passed 20 days ago.
    old = make_host(ca, HOST, days=90, not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=80))
    write(node.ssl_dir / "ssl-web.key", old.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", old.cert_pem())
    ca_file = write(tmp_path / "some-ca.pem", make_ca("unused").cert_pem())
    down = {"directory": f"https://localhost:{free_port()}/dir", "names": [HOST],
            "challenge": {"webroot": str(tmp_path / "www")}, "ca_bundle": str(ca_file)}
    set_acme(node, down)
    daemon = RunningDaemon(node, tmp_path / "daemon")
    before = snapshot(node.ssl_dir)
    failed = run_cli("acme", "renew", "--config", daemon.config)
    assert failed.rc == 1, failed.out + failed.err
    assert "error: https://localhost:" in failed.out and "ACME connection: cannot reach" in failed.out
    assert "nothing in" in failed.out and "Traceback" not in failed.out + failed.err
    assert snapshot(node.ssl_dir) == before
    again = run_cli("acme", "renew", "--config", daemon.config)
    assert again.rc == 1 and "backing off after 1 failed attempt" in again.out, again.out
    daemon.start()
    try:
        doc = daemon.wait_for(lambda d: "acme" in d, timeout=60, what="the ACME record in /health")
        assert doc["status"] == "warning" and doc["acme"]["overdue"] is True
        assert doc["acme"]["last_error"]["type"] == "connection"
        status = run_cli("status", "--config", daemon.config)
        assert status.rc == 1 and "OVERDUE" in status.out and "SSLRECONCILER WARNING" in status.out, status.out
    finally:
        daemon.close()
    after = snapshot(node.ssl_dir)  # the daemon built the stores; the sources are as they were
    assert {n: after[n] for n in ("ssl-web.key", "ssl-web.crt")} == {n: before[n] for n in ("ssl-web.key", "ssl-web.crt")}


@pytest.mark.slow
def test_pebble_refusing_shows_its_problem_document(tmp_path: Path, acme_node: Node, pebble: Pebble) -> None:
    set_acme(acme_node, acme_block(pebble, [BLOCKED], {"listen": f"127.0.0.1:{pebble.http_port}"}))
    before = snapshot(acme_node.ssl_dir)
    refused = acme(acme_node, "renew")
    assert refused.rc == 1, refused.out + refused.err
    assert "urn:ietf:params:acme:error:rejectedIdentifier" in refused.out, refused.out
    assert BLOCKED in refused.out and "Traceback" not in refused.out + refused.err
    assert snapshot(acme_node.ssl_dir) == before
    record = json.loads((tmp_path / "state" / "acme.json").read_text())
    assert record["last_result"] == "failed" and record["last_error"]["type"].endswith("rejectedIdentifier")


@pytest.mark.slow
def test_unreachable_webroot_fails_cleanly(tmp_path: Path, acme_node: Node, pebble: Pebble) -> None:
    webroot = tmp_path / "www"
    set_acme(acme_node, acme_block(pebble, [HOST], {"webroot": str(webroot)}))
    before = snapshot(acme_node.ssl_dir)
    absent = acme(acme_node, "renew")
    assert absent.rc == 1 and "ACME webroot" in absent.out and "No such file" in absent.out, absent.out
    webroot.mkdir()  # there now, but nothing serves it: pebble's validation cannot fetch the token
    failed = acme(acme_node, "renew", "--json", "--force")  # --force: past the back-off the first failure set
    assert failed.rc == 1, failed.out + failed.err
    doc = failed.json()
    assert doc["finding"]["level"] == "error" and doc["finding"]["code"] == "acme"
    assert doc["record"]["last_error"]["type"].startswith("urn:ietf:params:acme:error:"), doc["record"]
    assert HOST in doc["record"]["last_error"]["detail"]
    assert snapshot(acme_node.ssl_dir) == before
    assert list((webroot / ".well-known" / "acme-challenge").iterdir()) == []


def test_acme_config_errors_exit_2(tmp_path: Path, acme_node: Node) -> None:
    before = snapshot(acme_node.ssl_dir)
    set_acme(acme_node, None)
    none = acme(acme_node, "renew")
    assert none.rc == 2 and "no acme block" in none.err, none.err
    set_acme(acme_node, {"directory": "https://x.example/dir", "challenge": {"webroot": "rel/dir"}})
    bad = acme(acme_node, "renew")
    assert bad.rc == 2 and "acme.challenge" in bad.err and "absolute" in bad.err, bad.err
    set_acme(acme_node, {"directory": "https://x.example/dir", "challenge": {"webroot": "/w", "listen": "1.2.3.4:80"}})
    assert acme(acme_node, "status").rc == 2
    set_acme(acme_node, {"directory": "http://x.example/dir", "challenge": {"listen": "127.0.0.1:80"}})
    assert acme(acme_node, "renew").rc == 2
    # The contract's block, exactly as the issue and docs/desired-state.md show it, is accepted.
    contract = {"directory": "https://acme-v02.api.letsencrypt.org/directory", "contact": "admin@example.com",
                "names": ["pbx.example.com"], "challenge": {"webroot": "/var/www/acme"}, "ca_bundle": None,
                "key_type": "ec-p256", "renew_before_days": None, "eab": None}
    set_acme(acme_node, contract)
    status = acme(acme_node, "status", "--json")
    assert status.rc == 1 and status.json()["renew"] is True, status.out + status.err  # due: no certificate yet
    assert not (tmp_path / "state" / "acme-account.key").exists()
    assert snapshot(acme_node.ssl_dir) == before


EAB_KID, EAB_HMAC = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"  # pebble's example


@pytest.mark.slow
def test_external_account_binding(tmp_path: Path, acme_node: Node, pebble_factory) -> None:
    pebble = pebble_factory(eab_keys={EAB_KID: EAB_HMAC})
    listen = {"listen": f"127.0.0.1:{pebble.http_port}"}
    set_acme(acme_node, acme_block(pebble, [HOST], listen))
    refused = acme(acme_node, "renew")
    assert refused.rc == 1 and "urn:ietf:params:acme:error:externalAccountRequired" in refused.out, refused.out
    hmac_file = write(tmp_path / "eab-hmac", EAB_HMAC.encode() + b"\n", 0o600)
    set_acme(acme_node, acme_block(pebble, [HOST], listen, eab={"kid": EAB_KID, "hmac_key": {"file": str(hmac_file)}}))
    bound = acme(acme_node, "renew")
    assert bound.rc == 0, bound.out + bound.err
    assert EAB_HMAC not in bound.out + bound.err + (tmp_path / "state" / "acme.json").read_text()
    assert f"DNS:{HOST}" in sans(acme_node.ssl_dir / "ssl-web.crt")
    set_acme(acme_node, acme_block(pebble, [HOST], listen, eab={"kid": EAB_KID,
                                                                 "hmac_key": {"file": str(tmp_path / "absent")}}))
    missing = acme(acme_node, "renew", "--force")
    assert missing.rc == 2 and "acme.eab.hmac_key" in missing.err, missing.err


@pytest.mark.slow
def test_webroot_escaping_through_a_symlink_is_refused(tmp_path: Path, acme_node: Node, pebble: Pebble) -> None:
    webroot, elsewhere = tmp_path / "www", tmp_path / "elsewhere"
    webroot.mkdir()
    elsewhere.mkdir()
    (webroot / ".well-known").symlink_to(elsewhere)  # whoever owns the webroot must not steer where we write
    set_acme(acme_node, acme_block(pebble, [HOST], {"webroot": str(webroot)}))
    before = snapshot(acme_node.ssl_dir)
    refused = acme(acme_node, "renew")
    assert refused.rc == 1 and "ACME webroot" in refused.out and "symlink" in refused.out, refused.out + refused.err
    assert list(elsewhere.iterdir()) == [] and snapshot(acme_node.ssl_dir) == before
