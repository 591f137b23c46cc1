"""`web install` and `web rollback` replace the web pair both-or-neither: a full disk between the key and
the certificate must not leave a new key beside the old certificate."""

from __future__ import annotations

import os
from pathlib import Path

from sslreconciler.fsio import TEMP_PREFIX

from conftest import fill_filesystem, run_cli
from pkitools import Issued, make_ca, make_host, seed_node, write

HOST = "master.example.com"


def _pair(ssl_dir: Path) -> tuple[bytes, bytes]:
    return (ssl_dir / "ssl-web.key").read_bytes(), (ssl_dir / "ssl-web.crt").read_bytes()


def test_full_disk_between_key_and_certificate_changes_nothing(tmpfs: Path, tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmpfs / "n", HOST, ca, web=True)
    ssl_dir = node.ssl_dir
    # a first install, so that a previous pair exists and each write replaces a file of the same size
    first = make_host(ca, HOST)
    write(tmp_path / "first.key", first.key_pem(), 0o600)
    write(tmp_path / "first.crt", first.cert_pem())
    done = run_cli("web", "install", "--ssl-dir", ssl_dir, "--desired-state", node.desired,
                   "--cert", tmp_path / "first.crt", "--key", tmp_path / "first.key")
    assert done.rc == 0, done.out + done.err
    before = _pair(ssl_dir)
    # the next certificate ships a chain of intermediates: more pages than the one it replaces
    chain = [make_ca(f"int-{i}.example.com", issuer=ca) for i in range(1)]
    nxt = make_host(chain[-1], HOST)
    write(tmp_path / "next.key", nxt.key_pem(), 0o600)
    write(tmp_path / "next.crt", nxt.cert_pem() + b"".join(c.cert_pem() for c in chain) + ca.cert_pem() * 2)
    assert (tmp_path / "next.crt").stat().st_size > 4096
    fill_filesystem(tmpfs, leave_pages=1)
    result = run_cli("web", "install", "--ssl-dir", ssl_dir, "--desired-state", node.desired,
                     "--cert", tmp_path / "next.crt", "--key", tmp_path / "next.key")
    assert _pair(ssl_dir) == before  # the old key with the old certificate: never one of each
    assert result.rc != 0
    assert "Traceback" not in result.err
    assert "No space left on device" in result.out + result.err
    assert not [n for n in os.listdir(ssl_dir) if n.startswith(TEMP_PREFIX)]
    # space back: the same install goes through
    (tmpfs / "filler").unlink()
    again = run_cli("web", "install", "--ssl-dir", ssl_dir, "--desired-state", node.desired,
                    "--cert", tmp_path / "next.crt", "--key", tmp_path / "next.key")
    # the intermediate ships in the certificate file: the pair verifies against its issuer and the stores are ok
    assert again.rc == 0, again.out + again.err
    assert "installed CN=master.example.com (verified against its issuer)" in again.out, again.out
    assert f"{ssl_dir}: ok" in again.out, again.out
    # the new key with the new certificate and its chain (the root given twice is kept once)
    assert _pair(ssl_dir) == (nxt.key_pem(), nxt.cert_pem() + chain[0].cert_pem() + ca.cert_pem())
