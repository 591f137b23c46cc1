"""The stat-based no-op (reconcile/stat_index.py): a trust file whose device, inode, size, mtime and ctime
match the state dir's stat index is not read again; nothing listed in issue 27 fools it.

Each test first lets the tree age past the racy margin (so the index is really used: a file younger than
that is re-read by rule), reconciles once to record the index, then changes a trust file in a way that
keeps what a naive index would compare (the size, a forged mtime) and checks with keytool that the next
one-shot (and the daemon) put what the file now says into the truststore. Without the index rule (the
recorded facts believed whenever an entry exists) each of these fails: the truststore keeps the old
certificate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonkit import RunningDaemon, wait_until
from userkit import as_user, chown_tree

from conftest import PASSWORD, reconcile, snapshot
from pkitools import Issued, Node, make_ca, seed_node, write

RACY_MARGIN_S = 2.0  # stat_index.RACY_MARGIN_NS, as a user of the product sees it
INDEX = "stat-index.json"


def _same_size_cas(cn: str) -> tuple[Issued, Issued]:
    """Two different self-signed CAs with the same name whose PEM files have the same size."""
    seen: dict[int, Issued] = {}
    for _ in range(64):
        ca = make_ca(cn, kind="ec")
        size = len(ca.cert_pem())
        if size in seen:
            return seen[size], ca
        seen[size] = ca
    raise AssertionError("no two CAs of the same PEM size")


@pytest.fixture(scope="module")
def cas() -> tuple[Issued, Issued, Issued]:
    """peer-a's first certificate, a same-size replacement, and peer-b's."""
    first, second = _same_size_cas("peer-a.example.com")
    return first, second, make_ca("peer-b.example.com", kind="ec")


def _tree(tmp_path: Path, ca: Issued, cas: tuple[Issued, Issued, Issued]) -> Node:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    write(node.ssl_dir / "authorities" / "peer-a.crt", cas[0].cert_pem())
    write(node.ssl_dir / "authorities" / "peer-b.crt", cas[2].cert_pem())
    return node


def _aged(*dirs: Path) -> None:
    """Wait until every file below ``dirs`` is older than the racy margin (a condition, not a nap)."""
    newest = max(p.lstat().st_ctime_ns for d in dirs for p in [d, *d.rglob("*")]) / 1e9
    wait_until(lambda: time.time() > newest + RACY_MARGIN_S + 0.05, timeout=30, what="the tree to age")


def _truststore(node: Node) -> dict[str, str]:
    """alias -> SHA-256 of its certificate, as keytool reads authorities.jks."""
    proc = subprocess.run(["keytool", "-list", "-v", "-keystore", str(node.ssl_dir / "authorities.jks"),
                           "-storepass", PASSWORD], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out, alias = {}, None
    for line in proc.stdout.splitlines():
        if line.startswith("Alias name: "):
            alias = line.split(": ", 1)[1]
        elif line.strip().startswith("SHA256:") and alias is not None:
            out[alias] = line.split(":", 1)[1].strip().replace(":", "").lower()
            alias = None
    return out


def _users_state(world: Path, user) -> Path:
    state = world / "state"
    state.mkdir(mode=0o700)
    os.chown(state, user.pw_uid, user.pw_gid)
    return state


def _state() -> Path:
    return Path(os.environ["SSLRECONCILER_STATE_DIR"])


def _indexed_once(node: Node) -> dict:
    """Age the tree, reconcile (recording the index), and return the index as recorded."""
    _aged(node.ssl_dir)
    first = reconcile(node)
    assert first.rc == 0 and first.json()["findings"] == [], first.out + first.err
    index = json.loads((_state() / INDEX).read_bytes())
    assert set(index["files"]) >= {"authorities/peer-a.crt", "authorities/peer-b.crt"}
    return index


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """New content of the same size, the old mtime forged back (``touch -d``): only the ctime moves."""
    st = path.stat()
    assert len(data) == st.st_size
    with path.open("r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = path.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


def _noticed(node: Node, new: Issued) -> None:
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    assert _truststore(node)["peer-a"] == new.fingerprint()
    assert any(c["alias"] == "peer-a" and c["fingerprint"] == new.fingerprint() for c in result.json()["trust"]["cas"])


def test_unchanged_files_come_from_the_index_and_the_outcome_equals_a_full_read(tmp_path, ca, cas) -> None:
    node = _tree(tmp_path, ca, cas)
    _indexed_once(node)
    before = snapshot(node.ssl_dir)
    indexed = reconcile(node)
    index_after = (_state() / INDEX).read_bytes()
    full = reconcile(node, "--full-read")
    assert indexed.rc == full.rc == 0
    a, b = indexed.json(), full.json()
    for doc in (a, b):
        doc.pop("started_at"), doc.pop("duration_ms")
    assert a == b  # the report and --json: the same, whether the files were read or proved unchanged
    assert snapshot(node.ssl_dir) == before  # a no-op both ways: nothing rewritten
    assert _truststore(node) == {"peer-a": cas[0].fingerprint(), "peer-b": cas[2].fingerprint(),
                                 "ca.master.example.com": ca.fingerprint(), "master.example.com": node.ssl.fingerprint()}
    check = json.loads(index_after)
    assert check["files"]["authorities/peer-a.crt"][0][1] == (node.ssl_dir / "authorities" / "peer-a.crt").stat().st_ino


def test_same_size_content_with_forged_mtime_is_seen(tmp_path, ca, cas) -> None:
    node = _tree(tmp_path, ca, cas)
    _indexed_once(node)
    _rewrite_in_place(node.ssl_dir / "authorities" / "peer-a.crt", cas[1].cert_pem())
    _noticed(node, cas[1])


def test_rename_over_is_seen(tmp_path, ca, cas) -> None:
    node = _tree(tmp_path, ca, cas)
    _indexed_once(node)
    target = node.ssl_dir / "authorities" / "peer-a.crt"
    old = target.stat()
    staged = node.ssl_dir / ".peer-a.new"
    staged.write_bytes(cas[1].cert_pem())
    os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.rename(staged, target)
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (old.st_size, old.st_mtime_ns)
    _noticed(node, cas[1])


def test_a_change_in_the_tick_of_the_read_is_seen(tmp_path, ca, cas) -> None:
    """Racy clean: a file changed within the clock tick of the read that recorded it keeps its stat. Made
    exact here by writing the new stat into the index (what a coarse clock does), leaving the moment the
    stats were taken as it was: the entry is younger than that moment minus the margin, so it is read."""
    node = _tree(tmp_path, ca, cas)
    index = _indexed_once(node)
    target = node.ssl_dir / "authorities" / "peer-a.crt"
    _rewrite_in_place(target, cas[1].cert_pem())
    st = target.stat()
    index["files"]["authorities/peer-a.crt"][0] = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    (_state() / INDEX).write_text(json.dumps(index))
    _noticed(node, cas[1])


def _claim_peer_b_for_peer_a(state: Path) -> None:
    """Edit the index so it says peer-a.crt holds peer-b's certificate (its stat left matching)."""
    index = json.loads((state / INDEX).read_bytes())
    files = index["files"]
    files["authorities/peer-a.crt"][1] = files["authorities/peer-b.crt"][1]
    (state / INDEX).write_text(json.dumps(index))


def test_an_edited_index_of_this_user_is_believed_and_full_read_heals_it(tmp_path, ca, cas) -> None:
    """The trusted case (docs/design.md): the state dir is this user's own, like its key; what it claims
    is used until the file changes or a full read (``--full-read``, the daemon's every Nth resync)."""
    node = _tree(tmp_path, ca, cas)
    _indexed_once(node)
    _claim_peer_b_for_peer_a(_state())
    believed = reconcile(node)
    assert believed.rc == 0
    assert _truststore(node)["peer-a"] == cas[2].fingerprint()  # the index was used, not the file
    healed = reconcile(node, "--full-read")
    assert healed.rc == 0
    assert _truststore(node)["peer-a"] == cas[0].fingerprint()


def test_a_group_writable_index_is_not_believed(tmp_path, ca, cas) -> None:
    node = _tree(tmp_path, ca, cas)
    _indexed_once(node)
    _claim_peer_b_for_peer_a(_state())
    (_state() / INDEX).chmod(0o660)
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    assert _truststore(node)["peer-a"] == cas[0].fingerprint()
    assert (_state() / INDEX).stat().st_mode & 0o077 == 0  # replaced by one of this run's own, 0600


def test_root_does_not_believe_the_service_users_index(tmp_path, ca, cas, service_user, world) -> None:
    node = _tree(world, ca, cas)
    state = _users_state(world, service_user)
    _aged(node.ssl_dir)
    chown_tree(node.ssl_dir, service_user)
    env_state = {"SSLRECONCILER_STATE_DIR": str(state)}
    first = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir",
                                   node.ssl_dir, "--desired-state", node.desired, "--json"),
                           capture_output=True, text=True, timeout=120, env={**os.environ, **env_state})
    assert first.returncode == 0, first.stdout + first.stderr
    assert (state / INDEX).stat().st_uid == service_user.pw_uid
    index = json.loads((state / INDEX).read_bytes())
    files = index["files"]
    files["authorities/peer-a.crt"][1] = files["authorities/peer-b.crt"][1]
    (state / INDEX).write_text(json.dumps(index))
    os.chown(state / INDEX, service_user.pw_uid, service_user.pw_gid)
    result = subprocess.run(  # root, on the service user's state dir
        [sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(node.ssl_dir), "--desired-state",
         str(node.desired), "--json"], capture_output=True, text=True, timeout=120, env={**os.environ, **env_state})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is ignored" in result.stderr  # the state dir is the service user's: nothing in it believed
    assert _truststore(node)["peer-a"] == cas[0].fingerprint()


def test_chmod_making_a_file_unreadable_is_seen(tmp_path, ca, cas, service_user, world) -> None:
    """As the service user (root reads whatever the mode): the chmod moves only the ctime."""
    node = _tree(world, ca, cas)
    state = _users_state(world, service_user)
    chown_tree(node.ssl_dir, service_user)
    _aged(node.ssl_dir)
    env = {**os.environ, "SSLRECONCILER_STATE_DIR": str(state)}
    argv = as_user(service_user, sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", node.ssl_dir,
                   "--desired-state", node.desired, "--json")
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0 and json.loads(first.stdout)["findings"] == [], first.stdout + first.stderr
    (node.ssl_dir / "authorities" / "peer-a.crt").chmod(0o000)
    second = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    found = {(f["file"], f["code"]) for f in json.loads(second.stdout)["findings"]}
    assert ("authorities/peer-a.crt", "unreadable") in found, second.stdout
    assert "peer-a" not in _truststore(node)


def test_the_daemon_sees_each_change_through_its_index(tmp_path, ca, cas) -> None:
    """Watcher-triggered reconciles use the daemon's in-memory index; no resync (1 h) and no full read
    (every 1000th) comes to the rescue."""
    node = _tree(tmp_path, ca, cas)
    _aged(node.ssl_dir)
    d = RunningDaemon(node, tmp_path / "d", settings="resync_interval = 3600.0\nfull_read_every = 1000\n"
                                                        "quiet_period = 0.1")
    try:
        d.start()
        d.wait_for(lambda doc: doc["counts"]["reconciles"] >= 1, what="the first reconcile")

        def peer_a(doc: dict) -> str:
            return next((c["fingerprint"] for c in doc.get("trust", {}).get("cas", []) if c["alias"] == "peer-a"), "")

        target = node.ssl_dir / "authorities" / "peer-a.crt"
        _rewrite_in_place(target, cas[1].cert_pem())  # same size, forged mtime
        d.wait_for(lambda doc: peer_a(doc) == cas[1].fingerprint(), what="the rewritten peer-a")
        assert _truststore(node)["peer-a"] == cas[1].fingerprint()
        old = target.stat()
        staged = node.ssl_dir / ".peer-a.new"
        staged.write_bytes(cas[0].cert_pem())
        os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))
        os.rename(staged, target)  # rename over, same size and mtime
        d.wait_for(lambda doc: peer_a(doc) == cas[0].fingerprint(), what="peer-a renamed over")
        assert _truststore(node)["peer-a"] == cas[0].fingerprint()
    finally:
        d.close()


def test_the_daemons_health_is_the_same_from_the_index_and_from_a_full_read(tmp_path, ca, cas) -> None:
    """Resyncs every second, every 2nd a full read: two resyncs in a row are one of each (schedule.py's
    full_read_due); /health after either says the same, but for the times."""
    node = _tree(tmp_path, ca, cas)
    _aged(node.ssl_dir)
    d = RunningDaemon(node, tmp_path / "d", settings="resync_interval = 1.0\nfull_read_every = 2")
    try:
        d.start()
        docs: list[dict] = []

        def next_resync() -> bool:
            doc = d.health()[1]
            if doc["counts"]["reconciles"] >= 2 and doc["last_reconcile"]["trigger"] == "resync":
                if not docs or doc["counts"]["reconciles"] == docs[-1]["counts"]["reconciles"] + 1:
                    if not docs or docs[-1]["counts"]["reconciles"] != doc["counts"]["reconciles"]:
                        docs.append(doc)
                elif doc["counts"]["reconciles"] > docs[-1]["counts"]["reconciles"] + 1:
                    docs[:] = [doc]  # missed one: start the pair again
            return len(docs) == 2

        wait_until(next_resync, timeout=60, what="two resyncs in a row")
        keep = ("status", "artifacts", "hash_links", "findings", "certificates", "trust", "expiry_warning_days")
        first, second = ({k: doc.get(k) for k in keep} for doc in docs)
        assert first == second
        assert any(c["alias"] == "peer-a" for c in first["trust"]["cas"])
    finally:
        d.close()


def test_the_service_users_daemon_sees_a_chmod_through_its_index(ca, cas, service_user, world) -> None:
    """The daemon as the service user (root reads whatever the mode): a chmod 000 moves only the ctime, and
    the watcher's reconcile, through the in-memory index, finds the file unreadable."""
    node = _tree(world, ca, cas)
    chown_tree(node.ssl_dir, service_user)
    _aged(node.ssl_dir)
    work = world / "d"
    d = RunningDaemon(node, work, settings="resync_interval = 3600.0\nfull_read_every = 1000",
                      wrapper=as_user(service_user))
    chown_tree(work, service_user)
    chown_tree(d.sockdir, service_user)
    try:
        d.start()
        d.wait_for(lambda doc: doc["counts"]["reconciles"] >= 1 and doc["status"] == "ok", what="the first reconcile")
        (node.ssl_dir / "authorities" / "peer-a.crt").chmod(0o000)
        doc = d.wait_for(lambda doc: any(f["file"] == "authorities/peer-a.crt" and f["code"] == "unreadable"
                                         for f in doc.get("findings", [])), what="peer-a unreadable")
        assert not any(c["alias"] == "peer-a" for c in doc["trust"]["cas"])
    finally:
        d.close()
