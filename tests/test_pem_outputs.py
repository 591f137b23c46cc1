"""Issue 24: verified PEM outputs per pair (one set in ``live/``, swapped with one rename) and the PEM CA
bundle. Every output checked with openssl; a bad pair keeps the last good set; a reader never sees a key
beside a certificate of another generation."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from conftest import openssl, reconcile, run_cli
from pkitools import NOW, Issued, Node, make_ca, make_host, name, new_key, seed_node, write

PEM_NAMES = ["key", "fullchain.pem", "crt", "chain.pem"]


def live(node: Node, name: str) -> Path:
    return node.ssl_dir / "live" / name


def certs_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes()) if path.read_bytes() else []


def pubkey_of_key(path: Path) -> str:
    return openssl("pkey", "-in", path, "-pubout").stdout


def pubkey_of_cert(path: Path) -> str:
    return openssl("x509", "-in", path, "-noout", "-pubkey").stdout


def versions(node: Node) -> list[str]:
    return sorted(n for n in os.listdir(node.ssl_dir) if n.startswith(".live."))


def live_bytes(node: Node) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((node.ssl_dir / "live").iterdir())}


def test_seed_pem_outputs_checked_with_openssl(tmp_path: Path) -> None:
    root = make_ca("Root CA")
    inter = make_ca("Intermediate CA", issuer=root)
    node = seed_node(tmp_path / "n", "master.example.com", root, intermediate=inter, web=True)
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    artifacts = result.json()["artifacts"]
    for pair in ("ssl", "ssl-web"):
        for suffix in PEM_NAMES:
            assert artifacts[f"live/{pair}.{suffix}"]["action"] == "written"
    assert artifacts["authorities.pem"]["action"] == "written"
    assert (node.ssl_dir / "live").is_symlink()
    assert versions(node) == [os.readlink(node.ssl_dir / "live")]

    for pair in ("ssl", "ssl-web"):
        key, crt = live(node, f"{pair}.key"), live(node, f"{pair}.crt")
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        for suffix in PEM_NAMES[1:]:
            assert stat.S_IMODE(live(node, f"{pair}.{suffix}").stat().st_mode) == 0o644
        openssl("pkey", "-in", key, "-noout", "-check")
        assert pubkey_of_key(key) == pubkey_of_cert(crt)  # the key matches the certificate beside it
        assert openssl("x509", "-in", crt, "-noout", "-subject").stdout.strip().endswith("master.example.com")
    # ssl: leaf + intermediate; the chain file holds the intermediate alone; verified against the bundle
    full = certs_in(live(node, "ssl.fullchain.pem"))
    assert [c.subject for c in full] == [node.ssl.cert.subject, inter.cert.subject]
    assert certs_in(live(node, "ssl.chain.pem")) == [inter.cert]
    assert certs_in(live(node, "ssl.crt")) == [node.ssl.cert]
    bundle = node.ssl_dir / "authorities.pem"
    assert certs_in(bundle) == [root.cert] and stat.S_IMODE(bundle.stat().st_mode) == 0o644
    verify = openssl("verify", "-CAfile", bundle, "-untrusted", live(node, "ssl.chain.pem"), live(node, "ssl.crt"))
    assert verify.stdout.strip().endswith(": OK")
    # ssl-web: its own pair from the root; an empty chain file
    assert live(node, "ssl-web.chain.pem").read_bytes() == b""
    openssl("verify", "-CAfile", bundle, live(node, "ssl-web.fullchain.pem"))

    # a no-op: nothing rewritten, the same version, the same inodes
    before = (os.readlink(node.ssl_dir / "live"), bundle.stat().st_ino)
    again = reconcile(node)
    assert again.rc == 0
    assert {n: a["action"] for n, a in again.json()["artifacts"].items() if "pem" in a["kind"]} == dict.fromkeys(
        [*(f"live/{p}.{s}" for p in ("ssl", "ssl-web") for s in PEM_NAMES), "authorities.pem"], "unchanged"
    )
    assert (os.readlink(node.ssl_dir / "live"), bundle.stat().st_ino) == before


def test_mismatched_web_pair_keeps_the_pem_set(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    assert reconcile(node).rc == 0
    good, version = live_bytes(node), os.readlink(node.ssl_dir / "live")
    write(node.ssl_dir / "ssl-web.key", new_key().private_bytes(  # a key of no certificate here
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    result = reconcile(node)
    assert result.rc == 1
    report = result.json()
    for suffix in PEM_NAMES:
        artifact = report["artifacts"][f"live/ssl-web.{suffix}"]
        assert artifact["action"] == "kept-last-good", artifact
        assert "ssl-web" in artifact["message"]
    assert any(f["file"] == "ssl-web.crt" and f["code"] == "key-mismatch" for f in report["findings"])
    assert live_bytes(node) == good and os.readlink(node.ssl_dir / "live") == version
    assert pubkey_of_key(live(node, "ssl-web.key")) == pubkey_of_cert(live(node, "ssl-web.crt"))


def test_untrusted_pair_keeps_its_pem_files_while_another_pair_moves_on(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    assert reconcile(node).rc == 0
    good = live_bytes(node)
    stranger = make_host(make_ca("Unknown CA"), node.host)  # ssl requires a chain to authorities/
    write(node.ssl_dir / "ssl.key", stranger.key_pem(), 0o600)
    write(node.ssl_dir / "ssl.crt", stranger.cert_pem())
    new_web = make_host(ca, node.host)
    write(node.ssl_dir / "ssl-web.key", new_web.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt", new_web.cert_pem())
    result = reconcile(node)
    assert result.rc == 1
    artifacts = result.json()["artifacts"]
    assert {artifacts[f"live/ssl.{s}"]["action"] for s in PEM_NAMES} == {"kept-last-good"}
    assert {artifacts[f"live/ssl-web.{s}"]["action"] for s in PEM_NAMES[:3]} == {"written"}
    assert artifacts["live/ssl-web.chain.pem"]["action"] == "unchanged"  # empty before and after
    assert "ssl.crt" in artifacts["live/ssl.key"]["message"]
    now = live_bytes(node)
    assert {n: b for n, b in now.items() if n.startswith("ssl.")} == {n: b for n, b in good.items() if n.startswith("ssl.")}
    assert certs_in(live(node, "ssl-web.crt")) == [new_web.cert]
    assert pubkey_of_key(live(node, "ssl-web.key")) == pubkey_of_cert(live(node, "ssl-web.crt"))


def _self_signed_leaf(cn: str) -> Issued:
    key = new_key()
    cert = (
        x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def test_bundle_holds_exactly_the_accepted_cas(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    second = make_ca("Second CA")
    refused = _self_signed_leaf("peer.example.com")
    write(node.ssl_dir / "authorities" / "second.crt", second.cert_pem())
    write(node.ssl_dir / "authorities" / "rogue.crt", refused.cert_pem())
    result = reconcile(node)
    report = result.json()
    assert any(f["file"] == "authorities/rogue.crt" for f in report["findings"]), report["findings"]
    bundle = node.ssl_dir / "authorities.pem"
    held = certs_in(bundle)
    wanted = sorted([ca.cert, second.cert], key=lambda c: c.fingerprint(hashes.SHA256()))
    assert held == wanted  # exactly the accepted CAs, ordered by fingerprint
    assert openssl("verify", "-CAfile", bundle, live(node, "ssl.crt")).returncode == 0
    rogue_pem = tmp_path / "rogue.pem"
    rogue_pem.write_bytes(refused.cert_pem())
    assert openssl("verify", "-CAfile", bundle, rogue_pem, check=False).returncode != 0
    # the same set under another file name: the truststore's alias changes, the bundle is not rewritten
    inode = bundle.stat().st_ino
    os.rename(node.ssl_dir / "authorities" / "second.crt", node.ssl_dir / "authorities" / "renamed.crt")
    renamed = reconcile(node).json()["artifacts"]
    assert renamed["authorities.pem"]["action"] == "unchanged" and bundle.stat().st_ino == inode
    # the set changes: rewritten
    (node.ssl_dir / "authorities" / "renamed.crt").unlink()
    assert reconcile(node).json()["artifacts"]["authorities.pem"]["action"] == "written"
    assert certs_in(bundle) == [ca.cert]


def test_private_mode_and_hook_after_a_pem_output(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    marker = tmp_path / "reloaded"
    hook = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    node.desired.write_text(json.dumps({
        "hostname": node.host, "permissions": {"private_mode": "0640"},
        "hooks": [{"name": "apache", "after": ["live/ssl-web.key"], "command": hook}],
    }))
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    assert stat.S_IMODE(live(node, "ssl-web.key").stat().st_mode) == 0o640
    assert marker.read_text() == "x"
    assert reconcile(node).rc == 0 and marker.read_text() == "x"  # nothing written, no hook
    write(node.ssl_dir / "ssl-web.key", new_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), 0o600)
    assert reconcile(node).rc == 1 and marker.read_text() == "x"  # kept last good: no hook


def test_outputs_over_sources_refused(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    node.desired.write_text(json.dumps({"hostname": node.host, "pem_dir": "authorities"}))
    result = reconcile(node)
    assert result.rc == 2 and "named like a source" in result.err, result.err
    node.desired.write_text(json.dumps({"hostname": node.host, "pem_dir": None}))
    result = reconcile(node)
    assert result.rc == 2 and "pem_dir is null" in result.err, result.err
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [{"after": ["live/nope.pem"], "command": ["true"]}]}))
    assert reconcile(node).rc == 2


def test_something_else_at_the_pem_dir_is_left_alone(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    (node.ssl_dir / "live").mkdir()
    (node.ssl_dir / "live" / "mine.txt").write_text("the admin's")
    result = reconcile(node)
    assert result.rc == 1
    assert result.json()["artifacts"]["live/ssl.key"]["action"] == "failed"
    assert (node.ssl_dir / "live" / "mine.txt").read_text() == "the admin's" and versions(node) == []


READER = r"""
import os, sys, time
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key, PublicFormat, Encoding
ssl_dir, stop = sys.argv[1], sys.argv[2]
checks = gone = 0
seen = set()
print("ready", flush=True)
deadline = time.monotonic() + 300
while not os.path.exists(stop) and time.monotonic() < deadline:
    try:
        fd = os.open(os.path.join(ssl_dir, "live"), os.O_RDONLY | os.O_DIRECTORY)  # resolved once
        try:
            seen.add(os.readlink(os.path.join(ssl_dir, "live")))
            with open(os.open("ssl-web.key", os.O_RDONLY, dir_fd=fd), "rb") as f:
                key = f.read()
            with open(os.open("ssl-web.crt", os.O_RDONLY, dir_fd=fd), "rb") as f:
                crt = f.read()
        finally:
            os.close(fd)
    except FileNotFoundError:
        gone += 1  # a version removed two swaps later: read it again
        continue
    a = load_pem_private_key(key, None).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    b = x509.load_pem_x509_certificate(crt).public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if a != b:
        print("MISMATCH", flush=True)
    checks += 1
print(f"checks {checks} gone {gone} versions {len(seen)}", flush=True)
"""


def test_reader_never_sees_a_mismatched_set_during_200_swaps(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    pairs = [make_host(ca, node.host), make_host(ca, node.host)]
    assert reconcile(node).rc == 0
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(node.ssl_dir), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        for i in range(200):
            pair = pairs[i % 2]
            write(node.ssl_dir / "ssl-web.key", pair.key_pem(), 0o600)
            write(node.ssl_dir / "ssl-web.crt", pair.cert_pem())
            result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json")
            assert result.json()["artifacts"]["live/ssl-web.key"]["action"] == "written", i
        stop.touch()
        out, _ = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.send_signal(signal.SIGKILL)
            reader.wait()
    print(f"\nreader through 200 swaps: {out.strip()}")
    assert "MISMATCH" not in out, out
    checks, versions_seen = int(out.split()[1]), int(out.split()[5])
    assert checks > 0 and versions_seen > 2, out  # it read all along, across many swaps
    assert len(versions(node)) <= 2  # old versions removed: the current one, and the one it replaced


def test_sigkill_at_any_point_leaves_a_whole_set(tmp_path: Path, ca: Issued) -> None:
    """A reconcile killed at many moments of its swap leaves the old set or the new one; the next run cleans up."""
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    pairs = [make_host(ca, node.host), make_host(ca, node.host)]
    assert reconcile(node).rc == 0
    cmd = [sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(node.ssl_dir),
           "--desired-state", str(node.desired)]
    for i in range(12):
        pair = pairs[i % 2]
        write(node.ssl_dir / "ssl-web.key", pair.key_pem(), 0o600)
        write(node.ssl_dir / "ssl-web.crt", pair.cert_pem())
        before = set(versions(node))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # kill it the moment its new version appears (mid-write), or i polls later (around the swap)
        polls, deadline = 0, time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if set(versions(node)) - before:
                polls += 1
                if polls > i:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert pubkey_of_key(live(node, "ssl-web.key")) == pubkey_of_cert(live(node, "ssl-web.crt")), i
    result = reconcile(node)
    assert result.rc == 0, result.out
    assert len(versions(node)) <= 2  # the current one and, if it swapped, the one it replaced
    assert reconcile(node).rc == 0  # the next run removes every version but the current one
    assert versions(node) == [os.readlink(node.ssl_dir / "live")]
    assert not [n for n in os.listdir(node.ssl_dir) if n.endswith(".tmp")]
    assert pubkey_of_key(live(node, "ssl-web.key")) == pubkey_of_cert(live(node, "ssl-web.crt"))
