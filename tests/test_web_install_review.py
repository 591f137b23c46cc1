"""`web install|rollback` after the outside review: the install judges trust with the reconcile's own reading
of the trust sources, a failure after the new pair is in place does not stop the reconcile, a pair a crash
left half-replaced is never kept as the previous one, and no fallback is invented."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import keytool_sha256, run_cli
from pkitools import Issued, Node, make_ca, make_host, seed_node, write

HOST = "master.example.com"


def common(node: Node) -> list[str | Path]:
    return ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired]


def _linked_authorities(tmp_path: Path, node: Node) -> None:
    """The node's authorities dir moved to an allowed place, a symlink left in the ssl dir."""
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.move(node.ssl_dir / "authorities", vault / "authorities")
    (node.ssl_dir / "authorities").symlink_to(vault / "authorities")
    # hash links are made only in a real directory of the ssl dir: not asked for here
    desired = {"hostname": HOST, "allowed_symlink_dirs": [str(vault)], "truststore": {"hash_links": False}}
    node.desired.write_text(json.dumps(desired))


def _pair_files(tmp_path: Path, issued: Issued, stem: str) -> tuple[Path, Path]:
    key = write(tmp_path / "work" / f"{stem}.key", issued.key_pem(), 0o600)
    return key, write(tmp_path / "work" / f"{stem}.crt", issued.cert_pem())


def test_install_refuses_what_the_reconcile_refuses_through_an_allowed_symlinked_trust_source(
    tmp_path: Path, ca: Issued
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    _linked_authorities(tmp_path, node)
    before = (node.ssl_dir / "ssl-web.crt").read_bytes()
    fake = make_ca(ca.cert.subject.rfc4514_string().split("=", 1)[1])  # the real CA's subject, another key
    key, crt = _pair_files(tmp_path, make_host(fake, HOST), "forged")
    done = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    # the reconcile trusts the real CA through the allowed link: the forged chain is refused, nothing installed
    assert done.rc == 1 and "nothing installed" in done.err, done.out + done.err
    assert "bad signature" in done.err, done.err
    assert (node.ssl_dir / "ssl-web.crt").read_bytes() == before


def test_install_says_verified_when_the_reconcile_verifies_it_through_an_allowed_symlink(
    tmp_path: Path, ca: Issued
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    _linked_authorities(tmp_path, node)
    new = make_host(ca, HOST)
    key, crt = _pair_files(tmp_path, new, "new")
    done = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    assert done.rc == 0, done.out + done.err
    assert "(verified against its issuer)" in done.out and "UNVERIFIED" not in done.out, done.out
    assert f"{node.ssl_dir}: ok" in done.out, done.out
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()


def test_a_pending_key_that_cannot_be_removed_is_a_note_and_the_stores_follow_the_new_pair(
    tmp_path: Path, ca: Issued
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    assert run_cli("reconcile", *common(node)).rc == 0
    new = make_host(ca, HOST)
    pending = write(node.ssl_dir / "ssl-web.key.pending", new.key_pem(), 0o600)
    crt = write(tmp_path / "work" / "new.crt", new.cert_pem())
    subprocess.run(["chattr", "+i", str(pending)], check=True)  # root cannot unlink it either
    try:
        done = run_cli("web", "install", *common(node), "--cert", crt)
    finally:
        subprocess.run(["chattr", "-i", str(pending)], check=True)
    assert done.rc == 0, done.out + done.err
    assert "nothing installed" not in done.out + done.err
    assert f"{pending} could not be removed" in done.out, done.out
    assert (node.ssl_dir / "ssl-web.crt").read_bytes() == new.cert_pem()
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()  # the reconcile ran
    assert f"{node.ssl_dir}: ok" in done.out, done.out


def test_a_pair_half_replaced_by_a_crash_is_not_kept_and_rollback_restores_the_original(
    tmp_path: Path, ca: Issued
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    assert node.web is not None
    original = node.web
    new = make_host(ca, HOST)
    ssl_dir = node.ssl_dir
    # the state a SIGKILL between the two renames of an install leaves: the original kept aside, the new
    # key renamed in, the original certificate still in place
    write(ssl_dir / "ssl-web.key.previous", original.key_pem(), 0o600)
    write(ssl_dir / "ssl-web.crt.previous", original.cert_pem())
    write(ssl_dir / "ssl-web.key", new.key_pem(), 0o600)
    key, crt = _pair_files(tmp_path, new, "new")
    again = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    assert again.rc == 0, again.out + again.err
    assert (ssl_dir / "ssl-web.key.previous").read_bytes() == original.key_pem()
    assert (ssl_dir / "ssl-web.crt.previous").read_bytes() == original.cert_pem()
    assert "was not kept as the previous one" in again.out, again.out
    back = run_cli("web", "rollback", *common(node))
    assert back.rc == 0, back.out + back.err
    assert (ssl_dir / "ssl-web.key").read_bytes() == original.key_pem()
    assert (ssl_dir / "ssl-web.crt").read_bytes() == original.cert_pem()
    assert keytool_sha256(ssl_dir / "ssl-web.keystore", "ssl-web") == original.fingerprint()
    assert f"{ssl_dir}: ok" in back.out, back.out


def test_without_a_fallback_install_records_none_and_rollback_refuses_to_remove_the_pair(
    tmp_path: Path, ca: Issued
) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    pairs = [
        {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore", "pkcs12": "ssl.p12"},
        {"name": "ssl-web", "key": "ssl-web.key", "cert": "ssl-web.crt", "keystore": "ssl-web.keystore",
         "pkcs12": "ssl-web.p12", "verify": "if-available", "fallback": None},
    ]
    node.desired.write_text(json.dumps({"hostname": HOST, "pairs": pairs}))
    new = make_host(ca, HOST)
    key, crt = _pair_files(tmp_path, new, "new")
    done = run_cli("web", "install", *common(node), "--cert", crt, "--key", key)
    assert done.rc == 0, done.out + done.err
    assert not [n for n in (p.name for p in node.ssl_dir.iterdir()) if ".previous" in n]
    back = run_cli("web", "rollback", *common(node))
    assert back.rc == 1, back.out + back.err
    assert "no fallback" in back.err and "nothing changed" in back.err, back.err
    assert (node.ssl_dir / "ssl-web.crt").read_bytes() == new.cert_pem()
    assert keytool_sha256(node.ssl_dir / "ssl-web.keystore", "ssl-web") == new.fingerprint()
