"""Whose the stat index is, and what its recorded facts may make root do (reconcile/stat_index.py,
file_facts.py): an index is believed only by the euid whose reads it records, and recorded facts that
could name a link outside the ssl dir or write a store Java cannot load are dropped (the file is read).
Each test fails on the code before issue 27's fix: the service user trusted a root-only file through
root's index; root made ``../../PWNED.0``; keytool could not load the store written from ``der: AAAA``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonkit import wait_until
from test_stat_noop import _truststore
from userkit import as_user, chown_tree

from sslreconciler.reconcile.decide import decide_links
from sslreconciler.reconcile.execute import execute
from sslreconciler.reconcile.record import load_record
from sslreconciler.reconcile.state import HASH_LINK, LinkDir
from sslreconciler.reconcile.steps import MakeLink, RemoveLink

from conftest import reconcile
from pkitools import Issued, Node, make_ca, seed_node, write

INDEX = "stat-index.json"
PEER = "authorities/peer-a.crt"


@pytest.fixture(scope="module")
def cas() -> tuple[Issued, Issued, Issued]:
    """peer-a's, peer-b's, and the root-only secret's."""
    return (make_ca("peer-a.example.com", kind="ec"), make_ca("peer-b.example.com", kind="ec"),
            make_ca("secret.example.com", kind="ec"))


def _tree(base: Path, ca: Issued, cas: tuple[Issued, Issued, Issued]) -> Node:
    node = seed_node(base / "n", "master.example.com", ca)
    write(node.ssl_dir / "authorities" / "peer-a.crt", cas[0].cert_pem())
    write(node.ssl_dir / "authorities" / "peer-b.crt", cas[1].cert_pem())
    return node


def _aged(directory: Path) -> None:
    newest = max(p.lstat().st_ctime_ns for p in [directory, *directory.rglob("*")]) / 1e9
    wait_until(lambda: time.time() > newest + 2.05, timeout=30, what="the tree to age")


def _state() -> Path:
    return Path(os.environ["SSLRECONCILER_STATE_DIR"])


def test_the_service_user_does_not_believe_roots_index(ca, cas, service_user, world) -> None:
    """Root reconciles the service user's dirs (its state dir too): the index it leaves there, handed to
    that user, says what root could read; the service user reads the root-only file itself."""
    node = _tree(world, ca, cas)
    state = world / "state"
    state.mkdir(mode=0o700)
    os.chown(state, service_user.pw_uid, service_user.pw_gid)
    chown_tree(node.ssl_dir, service_user)
    secret = node.ssl_dir / "authorities" / "secret.crt"
    write(secret, cas[2].cert_pem())
    secret.chmod(0o600)  # root's: the service user cannot read it
    _aged(node.ssl_dir)
    env = {**os.environ, "SSLRECONCILER_STATE_DIR": str(state)}
    args = ["reconcile", "--ssl-dir", str(node.ssl_dir), "--desired-state", str(node.desired), "--json"]
    as_root = subprocess.run([sys.executable, "-m", "sslreconciler", *args], capture_output=True, text=True,
                             timeout=120, env=env)
    assert as_root.returncode == 0, as_root.stdout + as_root.stderr
    assert (state / INDEX).stat().st_uid == service_user.pw_uid  # handed to the service user
    assert "authorities/secret.crt" in json.loads((state / INDEX).read_bytes())["files"]
    as_service = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", *args),
                                capture_output=True, text=True, timeout=120, env=env)
    found = {(f["file"], f["code"]) for f in json.loads(as_service.stdout)["findings"]}
    assert ("authorities/secret.crt", "unreadable") in found, as_service.stdout + as_service.stderr
    assert "secret" not in _truststore(node)
    assert json.loads((state / INDEX).read_bytes())["euid"] == service_user.pw_uid  # now its own


def _edit_peer_a(edit) -> None:
    index = json.loads((_state() / INDEX).read_bytes())
    edit(index["files"][PEER][1][2][0])  # its one certificate's facts
    (_state() / INDEX).write_text(json.dumps(index))
    (_state() / INDEX).chmod(0o600)


def _links(node: Node) -> dict[str, str]:
    directory = node.ssl_dir / "authorities"
    return {p.name: os.readlink(p) for p in directory.iterdir() if p.is_symlink()}


@pytest.mark.parametrize(
    ("what", "edit"),
    [
        ("subject hash", lambda cert: cert.__setitem__(5, "../../PWNED")),
        ("der", lambda cert: cert.__setitem__(0, "AAAA")),
    ],
)
def test_edited_recorded_facts_are_dropped_and_the_file_read(tmp_path, ca, cas, what, edit) -> None:
    node = _tree(tmp_path, ca, cas)
    _aged(node.ssl_dir)
    first = reconcile(node)
    assert first.rc == 0 and first.json()["findings"] == [], first.out + first.err
    links = _links(node)
    _edit_peer_a(edit)  # its stat still matches: before the fix, the edit was believed
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    assert list(tmp_path.rglob("*PWNED*")) == [] and list(tmp_path.parent.glob("*PWNED*")) == []
    assert _links(node) == links and all(HASH_LINK.match(n) for n in links)
    assert _truststore(node)["peer-a"] == cas[0].fingerprint()  # keytool loads the store
    assert what in ("subject hash", "der")


def test_links_not_shaped_like_hash_links_are_never_made_or_removed() -> None:
    """Belt and braces in decide: whatever name the facts give, only ``<8 hex>.<n>`` is touched."""
    wanted = {"authorities": {"../../PWNED.0": "peer-a.crt", "0123abcd.0": "peer-b.crt"}}
    have = {"authorities": LinkDir("authorities", links={"../x.0": "y.crt", "ffffffff.0": "gone.crt"})}
    _, steps, findings = decide_links(wanted, have)
    assert findings == []
    assert sorted((type(s).__name__, s.name) for s in steps) == [("MakeLink", "0123abcd.0"), ("RemoveLink", "ffffffff.0")]


def test_the_records_subject_hashes_are_kept_only_when_hash_shaped(tmp_path) -> None:
    """The record's memo of subject hashes (fingerprints.json) names links too: a value that is not
    8 lowercase hex digits is dropped on load (the hash is computed again)."""
    state = tmp_path / "rec"
    state.mkdir(mode=0o700)
    good, bad, worse = "aa" * 32, "bb" * 32, "cc" * 32
    doc = {"stores": {}, "subject_hashes": {good: "0123abcd", bad: "../../PWNED", worse: 5}}
    for name, data in (("fingerprints.key", b"k" * 32), ("fingerprints.json", json.dumps(doc).encode())):
        (state / name).write_bytes(data)
        (state / name).chmod(0o600)
    memo = load_record(state)
    assert memo.record_trusted and memo.subject_hashes == {bytes.fromhex(good): "0123abcd"}


def test_execute_refuses_a_link_step_whose_name_is_not_hash_shaped(tmp_path) -> None:
    """The last guard, should a step ever carry such a name: nothing made or removed, the step failed."""
    ssl = tmp_path / "ssl"
    (ssl / "authorities").mkdir(parents=True)
    (tmp_path / "victim").write_text("kept")
    fd = os.open(ssl, os.O_RDONLY | os.O_DIRECTORY)
    try:
        steps = [MakeLink("authorities", "../../PWNED.0", "x.crt", fresh=True),
                 RemoveLink("authorities", "../../victim"), MakeLink("authorities", "0123abcd.0", "x.crt", fresh=True)]
        failed = execute(fd, steps, ("authorities",))
    finally:
        os.close(fd)
    assert [f.step for f in failed] == steps[:2]
    assert (tmp_path / "victim").read_text() == "kept" and list(tmp_path.rglob("*PWNED*")) == []
    assert os.readlink(ssl / "authorities" / "0123abcd.0") == "x.crt"
