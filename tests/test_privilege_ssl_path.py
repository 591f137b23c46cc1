"""Issue 21, outside review round 2: root reaches the ssl dir through no link another user owns.

A service user who owns a directory on the way to the ssl dir (sipx's home is /etc/sipxpbx, the ssl
dir's parent) could put a symlink where the ssl dir is and send root's writes (stores, keys, hash
links, CA files) into a directory of its choosing. Root's writers open the ssl dir by walking from `/`
and judging every symlink followed: one another user owns is refused, naming it, and nothing is
written. Root's own links, and a user's ssl dir reached through them, work as before.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from userkit import chown_tree, run_as

from conftest import run_cli
from pkitools import Issued, make_host, seed_node, write

HOST = "master.example.com"


def _victim_and_link(world: Path, ca: Issued, user) -> tuple[Path, Path, dict[str, bytes]]:
    """A root-owned directory holding good sources (what root must not write into), and the path
    ``uparent/ssl``: a link the user made in its own directory, pointing there."""
    node = seed_node(world / "node", HOST, ca)
    victim = world / "victim"
    shutil.copytree(node.ssl_dir, victim, symlinks=True)  # root's: never handed to the user
    uparent = world / "uparent"
    uparent.mkdir()
    os.chown(uparent, user.pw_uid, user.pw_gid)
    run_as(user, f"import os; os.symlink({str(victim)!r}, {str(uparent / 'ssl')!r})")
    return victim, uparent / "ssl", _contents(victim)


def _contents(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): (p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p).encode()
                                        if p.is_symlink() else b"<dir>")
        for p in sorted(directory.rglob("*"))
    }


def _refused(result, link: Path) -> None:
    assert result.rc != 0, result.out + result.err
    assert "Traceback" not in result.err, result.err
    text = result.out + result.err
    assert str(link) in text and "owned by uid" in text, text


def test_roots_reconcile_refuses_an_ssl_dir_behind_the_users_link(world: Path, ca: Issued, service_user,
                                                                  tmp_path: Path) -> None:
    victim, link, before = _victim_and_link(world, ca, service_user)
    desired = write(world / "desired.json", b'{"hostname": "%s"}' % HOST.encode())
    result = run_cli("reconcile", "--ssl-dir", link, "--desired-state", desired, "--state-dir", tmp_path / "st")
    _refused(result, link)
    assert _contents(victim) == before, "root wrote into the directory the user's link pointed at"


def test_roots_web_install_refuses_an_ssl_dir_behind_the_users_link(world: Path, ca: Issued, service_user,
                                                                    tmp_path: Path) -> None:
    victim, link, before = _victim_and_link(world, ca, service_user)
    desired = write(world / "desired.json", b'{"hostname": "%s"}' % HOST.encode())
    web = make_host(ca, HOST)
    cert = write(tmp_path / "web.crt", web.cert_pem())
    key = write(tmp_path / "web.key", web.key_pem(), 0o600)
    result = run_cli("web", "install", "--ssl-dir", link, "--desired-state", desired, "--state-dir", tmp_path / "st",
                     "--cert", cert, "--key", key)
    _refused(result, link)
    assert _contents(victim) == before, "root installed the web pair where the user's link pointed"


def test_roots_own_link_to_the_users_ssl_dir_still_works(world: Path, ca: Issued, service_user,
                                                         tmp_path: Path) -> None:
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, service_user)
    mine = world / "roots"
    mine.mkdir()
    os.symlink(node.ssl_dir, mine / "ssl")  # root's link in root's directory: root's own choice
    desired = write(world / "desired.json", b'{"hostname": "%s"}' % HOST.encode())
    result = run_cli("reconcile", "--ssl-dir", mine / "ssl", "--desired-state", desired, "--state-dir", tmp_path / "st")
    assert result.rc == 0, result.out + result.err
    assert (node.ssl_dir / "ssl.keystore").stat().st_uid == service_user.pw_uid  # the owner's, as ever
