"""reconcile on generated PKIs, every output checked with keytool, openssl and Java."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from javakit import Pair, assert_handshakes, store_probes

from conftest import (
    PASSWORD,
    copied_node,
    keytool_list,
    openssl,
    reconcile,
    reconciled_template,
    snapshot,
)
from pkitools import Issued, Node, make_ca, seed_node

STORES = ["ssl.keystore", "ssl.p12", "ssl-web.keystore", "ssl-web.p12", "authorities.jks"]


@pytest.fixture(scope="module")
def built_reconciled(tmp_path_factory: pytest.TempPathFactory, ca: Issued) -> tuple[Node, Path]:
    """The seeded node after its first reconcile, built once per module: tests take ``reconciled``."""
    return reconciled_template(tmp_path_factory.mktemp("reconciled"), ca)


@pytest.fixture
def reconciled(built_reconciled: tuple[Node, Path], tmp_path: Path) -> Node:
    """This test's own copy of the seeded node as its first reconcile (exit 0) left it, state dir included."""
    return copied_node(built_reconciled, tmp_path)


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("with_intermediate", [False, True], ids=["direct", "intermediate"])
def test_seed_layout_builds_every_store(tmp_path: Path, kind: str, with_intermediate: bool,
                                        java_classes: Path) -> None:
    root = make_ca("ca.master.example.com", kind=kind)
    inter = make_ca("intermediate.example.com", kind=kind, issuer=root) if with_intermediate else None
    node = seed_node(tmp_path / "n", "master.example.com", root, kind=kind, intermediate=inter)

    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    report = result.json()
    assert report["status"] == "ok"
    stores = {name: a["action"] for name, a in report["artifacts"].items() if not a["kind"].startswith("pem")}
    assert stores == dict.fromkeys(STORES, "written")  # the PEM outputs: tests/test_pem_outputs.py

    chain_len = 2 if with_intermediate else 1
    stores = [("ssl.keystore", "JKS"), ("ssl-web.keystore", "JKS"), ("ssl.p12", "PKCS12"), ("ssl-web.p12", "PKCS12"),
              ("authorities.jks", "JKS")]
    probes = store_probes(java_classes, "system", [(t, node.ssl_dir / store, PASSWORD) for store, t in stores])
    for (store, _), probe in zip(stores[:4], probes[:4], strict=True):  # Java opens each, with the key (one JVM)
        alias = "ssl" if store.startswith("ssl.") else "ssl-web"
        assert probe.rc == 0 and probe.out.splitlines() == [f"{alias}\tkey\t{chain_len}"], (store, probe)
        mode = stat.S_IMODE((node.ssl_dir / store).stat().st_mode)
        assert mode == 0o600, f"{store} mode {mode:o}"
    assert probes[4].rc == 0 and sorted(probes[4].out.splitlines()) == [
        "ca.master.example.com\ttrusted\t1", "master.example.com\ttrusted\t1"], probes[4]
    assert stat.S_IMODE((node.ssl_dir / "authorities.jks").stat().st_mode) == 0o644

    # openssl opens the PKCS#12 with the password and finds the key matching the certificate
    dump = openssl("pkcs12", "-in", node.ssl_dir / "ssl.p12", "-passin", f"pass:{PASSWORD}", "-nodes").stdout
    assert dump.count("BEGIN CERTIFICATE") == chain_len
    assert "PRIVATE KEY" in dump
    # the hash links let openssl verify the host certificate against authorities/
    untrusted = ["-untrusted", node.ssl_dir / "ssl.crt"] if with_intermediate else []
    verify = openssl("verify", "-CApath", node.ssl_dir / "authorities", *untrusted, node.ssl_dir / "ssl.crt")
    assert verify.stdout.strip().endswith("OK")
    # the web stores start out as the ssl pair (the seed's first install)
    web = report["artifacts"]["ssl-web.keystore"]["certificate"]
    assert web["fingerprint_sha256"] == node.ssl.fingerprint()
    assert "from the ssl pair" in report["artifacts"]["ssl-web.keystore"]["message"]


def test_pkcs12_profiles_as_openssl_sees_them(reconciled, tmp_path: Path) -> None:
    node = reconciled
    info = openssl("pkcs12", "-in", node.ssl_dir / "ssl.p12", "-passin", f"pass:{PASSWORD}", "-info", "-noout").stderr
    assert "MAC: sha256" in info and "AES-256-CBC" in info and "hmacWithSHA256" in info

    node.desired.write_text(json.dumps({"hostname": node.host, "pkcs12_profile": "legacy"}))
    result = reconcile(node)
    assert result.rc == 0
    assert result.json()["artifacts"]["ssl.p12"]["message"].startswith("rewritten: PKCS#12 profile is modern")
    assert result.json()["artifacts"]["ssl.keystore"]["action"] == "unchanged"
    info = openssl("pkcs12", "-in", node.ssl_dir / "ssl.p12", "-passin", f"pass:{PASSWORD}", "-info", "-noout",
                   "-legacy", check=False)
    text = info.stdout + info.stderr
    assert "MAC: sha1" in text and "pbeWithSHA1And3-KeyTripleDES-CBC" in text


def test_legacy_profile_opens_on_old_java_where_modern_cannot(node, java_classes: Path, tmp_path: Path) -> None:
    assert reconcile(node).rc == 0
    modern = tmp_path / "modern.p12"  # the default profile's file, kept to be opened beside the legacy one
    shutil.copyfile(node.ssl_dir / "ssl.p12", modern)
    node.desired.write_text(json.dumps({"hostname": node.host, "pkcs12_profile": "legacy"}))
    assert reconcile(node).rc == 0
    for version in ("11", "system", "25"):  # one JVM per version opens both files
        modern_probe, legacy_probe = store_probes(java_classes, version, [
            ("PKCS12", modern, PASSWORD), ("PKCS12", node.ssl_dir / "ssl.p12", PASSWORD)])
        if version == "11":
            assert modern_probe.rc == 3 and "LOAD-FAILED" in modern_probe.out, (version, modern_probe)
        else:
            assert modern_probe.rc == 0 and modern_probe.out.split() == ["ssl", "key", "1"], (version, modern_probe)
        assert legacy_probe.rc == 0 and legacy_probe.out.split() == ["ssl", "key", "1"], (version, legacy_probe)


def test_jks_stores_open_on_old_and_new_java(node, java_classes: Path) -> None:
    assert reconcile(node).rc == 0
    for version in ("11", "system", "25"):  # one JVM per version opens both stores
        keystore, trust = store_probes(java_classes, version, [
            ("JKS", node.ssl_dir / "ssl.keystore", PASSWORD), ("JKS", node.ssl_dir / "authorities.jks", PASSWORD)])
        assert keystore.rc == 0 and keystore.out.split() == ["ssl", "key", "1"], (version, keystore)
        assert trust.rc == 0 and sorted(trust.out.splitlines()) == [
            "ca.master.example.com\ttrusted\t1", "master.example.com\ttrusted\t1"], (version, trust)


def test_noop_run_writes_nothing(reconciled) -> None:
    node = reconciled
    before = snapshot(node.ssl_dir)
    result = reconcile(node)
    assert result.rc == 0
    assert {a["action"] for a in result.json()["artifacts"].values()} == {"unchanged"}
    assert snapshot(node.ssl_dir) == before
    assert result.json()["hash_links"][0]["added"] == [] and result.json()["hash_links"][0]["removed"] == []


@pytest.mark.parametrize("damage", ["deleted", "truncated", "tampered", "appended", "garbage", "other-password"])
def test_damaged_store_is_rebuilt(reconciled, damage: str, tmp_path: Path) -> None:
    node = reconciled
    target = node.ssl_dir / "ssl.keystore"
    data = target.read_bytes()
    if damage == "deleted":
        target.unlink()
    elif damage == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "tampered":
        target.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "garbage":
        target.write_bytes(b"not a keystore")
    elif damage == "appended":  # pyjks alone would ignore bytes after the keyed hash
        target.write_bytes(data + b"x")
    else:
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"hostname": node.host, "password": {"value": "secret-other"}}))
        assert reconcile(node, "--desired-state", other).rc == 0
    others_before = {k: v for k, v in snapshot(node.ssl_dir).items() if k != "ssl.keystore"}
    result = reconcile(node)
    assert result.rc == 0, result.out
    assert result.json()["artifacts"]["ssl.keystore"]["action"] == "written"
    assert keytool_list(target) == {"ssl": ("PrivateKeyEntry", 1)}
    if damage != "other-password":  # there every store had been rewritten with the other password
        assert {k: v for k, v in snapshot(node.ssl_dir).items() if k != "ssl.keystore"} == others_before


def test_mode_is_corrected_in_place(reconciled) -> None:
    node = reconciled
    target = node.ssl_dir / "ssl.p12"
    os.chmod(target, 0o644)
    inode = target.stat().st_ino
    result = reconcile(node)
    assert result.json()["artifacts"]["ssl.p12"]["message"].startswith("fixed mode 0644 -> 0600")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.stat().st_ino == inode


def test_check_prints_the_plan_and_writes_nothing(node) -> None:
    before = snapshot(node.ssl_dir)
    result = reconcile(node, command="check")
    assert result.rc == 0
    assert {a["action"] for a in result.json()["artifacts"].values()} == {"would-write"}
    assert snapshot(node.ssl_dir) == before
    text = reconcile(node, command="check")
    assert text.rc == 0
    human = __import__("conftest").run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
    assert "would rewrite: missing" in human.out and "nothing written" in human.out


def test_mutual_tls_between_two_nodes(tmp_path: Path, ca: Issued, java_classes: Path) -> None:
    a = seed_node(tmp_path / "a", "master.example.com", ca)
    b = seed_node(tmp_path / "b", "secondary.example.com", ca)
    assert reconcile(a).rc == 0 and reconcile(b).rc == 0
    pair = Pair.nodes("secondary -> master", a.ssl_dir, b.ssl_dir)
    for version in ("system", "25"):
        assert_handshakes(java_classes, [pair], {pair.name: ("CN=master.example.com", "CN=secondary.example.com")},
                          version)


def test_owner_and_group_applied_as_root(node) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")  # CI runs as root
    node.desired.write_text(json.dumps({"hostname": node.host,
                                        "permissions": {"owner": "nobody", "group": "nogroup"}}))
    assert reconcile(node).rc == 0
    for name in STORES:
        st = (node.ssl_dir / name).stat()
        assert (st.st_uid, st.st_gid) == (65534, 65534), name
    # An owner this system does not have is a finding naming the desired state (exit 1), not a crash:
    # the stores stay as they are, owners untouched.
    node.desired.write_text(json.dumps({"hostname": node.host, "permissions": {"owner": "no-such-user-x"}}))
    result = reconcile(node)
    found = [f for f in json.loads(result.out)["findings"] if f["code"] == "unknown-owner"]
    assert result.rc == 1 and found and "no-such-user-x" in found[0]["reason"], result.out + result.err
    assert found[0]["file"] == str(node.desired)
    assert all((node.ssl_dir / name).stat().st_uid == 65534 for name in STORES)


def test_pkcs12_with_bytes_appended_is_rebuilt(reconciled) -> None:
    node = reconciled
    target = node.ssl_dir / "ssl.p12"
    target.write_bytes(target.read_bytes() + b"\0junk")  # cryptography alone would parse it as BER
    result = reconcile(node)
    assert result.json()["artifacts"]["ssl.p12"]["action"] == "written", result.out
    assert "Warning" not in result.err


def test_a_recorded_verdict_never_outlives_its_anchors(tmp_path: Path) -> None:
    """The state dir's record keeps chain verdicts so a no-op does not verify every signature again; a
    changed anchor set must still send every leaf back through verification."""
    from pkitools import make_host, write

    ca = make_ca("Verdict CA")
    node = seed_node(tmp_path / "n", "host.example.com", ca)
    peer = make_host(ca, "peer.example.com")
    write(node.ssl_dir / "authorities" / "peer.crt", peer.cert_pem())
    state = tmp_path / "state"
    first = reconcile(node, "--state-dir", state)
    assert first.rc == 0 and "peer" in keytool_list(node.ssl_dir / "authorities.jks"), first.out
    record = json.loads((state / "fingerprints.json").read_text())
    assert record["verdicts"], "the peer's verdict was not recorded"
    impostor = make_ca("Verdict CA")  # same name, another key: the peer no longer chains to it
    write(node.ssl_dir / "authorities" / "Verdict CA.crt", impostor.cert_pem())
    write(node.ssl_dir / "ssl.crt", make_host(impostor, "host.example.com", key=node.ssl.key).cert_pem())
    second = reconcile(node, "--state-dir", state)
    refused = [f for f in second.json()["findings"] if f["file"] == "authorities/peer.crt"]
    assert refused and refused[0]["code"] == "untrusted", second.out
    assert "peer" not in keytool_list(node.ssl_dir / "authorities.jks")
    # the record keeps what the sources hold now: the verdict nothing asked for is gone
    assert json.loads((state / "fingerprints.json").read_text())["verdicts"] == {}


def test_a_trust_file_whose_alias_a_jks_cannot_hold_is_left_out_and_keytool_opens_the_store(tmp_path: Path) -> None:
    """Java reads JKS aliases as modified UTF-8: a file named with a character outside the BMP would give
    an authorities.jks keytool cannot open at all. It is left out with a finding instead."""
    from pkitools import write

    ca = make_ca("Alias CA")
    node = seed_node(tmp_path / "n", "host.example.com", ca)
    write(node.ssl_dir / "authorities" / "smile-\U0001F600.crt", make_ca("Smile CA").cert_pem())
    result = reconcile(node)
    bad = [f for f in result.json()["findings"] if f["code"] == "bad-name"]
    assert bad and "smile" in bad[0]["file"] and "rename" in bad[0]["reason"], result.out
    aliases = keytool_list(node.ssl_dir / "authorities.jks")  # would fail: UTFDataFormatException
    assert "alias ca" in aliases and not any("smile" in a for a in aliases)
