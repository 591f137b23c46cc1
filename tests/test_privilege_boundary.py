"""Root on a directory the service user owns: nothing that user can plant turns root's commands.

Each test runs the real CLI as root against an ssl dir (or state dir) owned by an unprivileged user
made for the test, plants what that user could, and checks that the file, link or directory outside
is untouched and that the output names the cause.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from userkit import as_user, chown_tree, outside_secret, run_as, state_of

from conftest import keytool_list, run_cli, snapshot, soak_size
from pkitools import Issued, make_host, seed_node, write

HOST = "master.example.com"


def _node(world: Path, ca: Issued, user, web: bool = False):
    node = seed_node(world / "node", HOST, ca, web=web)
    chown_tree(node.ssl_dir, user)
    state = world / "state"
    state.mkdir(mode=0o700)
    return node, state


def _reconcile(node, state: Path, *extra: str | Path):
    return run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--state-dir", state,
                   "--json", *extra)


def test_swapped_store_never_turns_roots_mode_fix_on_another_file(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user)
    shadow, secret = outside_secret(world)
    before = state_of(shadow)
    first = _reconcile(node, state)
    assert first.rc == 0, first.out + first.err
    store = node.ssl_dir / "ssl.keystore"
    good = store.read_bytes()
    # The user keeps swapping: a copy of the store with the wrong mode (root then wants to chmod it),
    # then a symlink to the root-only file in its place, as fast as it can.
    swapper = subprocess.Popen(as_user(service_user, sys.executable, "-c", f"""
import os, time
d = {str(node.ssl_dir)!r}
good = bytes.fromhex({good.hex()!r})
end = time.monotonic() + 120
i = 0
while time.monotonic() < end:
    i += 1
    tmp = os.path.join(d, f"swap-{{i}}")
    with open(tmp, "wb") as fh:
        fh.write(good)
    os.chmod(tmp, 0o644)
    os.rename(tmp, os.path.join(d, "ssl.keystore"))
    link = os.path.join(d, f"link-{{i}}")
    os.symlink({str(shadow)!r}, link)
    os.rename(link, os.path.join(d, "ssl.keystore"))
"""))
    try:
        outcomes = set()
        for _ in range(soak_size(25)):
            result = _reconcile(node, state)
            assert "Traceback" not in result.err, result.err
            outcomes.add(result.json()["artifacts"]["ssl.keystore"]["message"].split(" ")[0])
            assert state_of(shadow) == before, "root changed the file a swapped-in symlink pointed at"
    finally:
        swapper.kill()
        swapper.wait()
    assert state_of(shadow) == before and shadow.read_bytes() == secret
    # the race was run: root found the user's swapped-in copy or link in place of its store, and rewrote it
    assert "rewritten:" in outcomes, outcomes


def test_output_replaced_by_a_symlink_is_replaced_not_followed(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user)
    shadow, _ = outside_secret(world)
    before = state_of(shadow)
    run_as(service_user, f"import os; os.symlink({str(shadow)!r}, {str(node.ssl_dir / 'authorities.jks')!r})")
    result = _reconcile(node, state)
    assert result.rc == 0, result.out + result.err
    message = result.json()["artifacts"]["authorities.jks"]["message"]
    assert "symlink" in message, message
    assert state_of(shadow) == before
    assert not (node.ssl_dir / "authorities.jks").is_symlink()


def test_symlinked_authorities_never_touches_the_directory_it_points_to(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user)
    elsewhere = world / "etc-ssl-certs"  # stands for /etc/ssl/certs
    elsewhere.mkdir()
    write(elsewhere / "some-ca.pem", ca.cert_pem())
    os.symlink("some-ca.pem", elsewhere / "deadbeef.0")
    os.symlink("gone.pem", elsewhere / "0badc0de.1")
    before = snapshot(elsewhere)
    run_as(service_user, f"""
import os, shutil
a = {str(node.ssl_dir / 'authorities')!r}
shutil.rmtree(a)
os.symlink({str(elsewhere)!r}, a)
""")
    result = _reconcile(node, state)
    assert "Traceback" not in result.err, result.err
    assert snapshot(elsewhere) == before, "root changed links in a directory outside the ssl dir"
    findings = result.json()["findings"]
    assert any(f["file"] == "authorities" and f["code"] in ("symlink-escape", "links") for f in findings), findings


def test_root_ignores_a_state_record_the_service_user_could_forge(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user)
    chown_tree(state, service_user)
    # The record is written by a run as the user (as the daemon's own runs would be) ...
    mine = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir",
                                  node.ssl_dir, "--desired-state", node.desired, "--state-dir", state),
                          capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(world)})
    assert mine.returncode == 0, mine.stdout + mine.stderr
    record = json.loads((state / "fingerprints.json").read_text())
    jks_path = str(node.ssl_dir / "authorities.jks")
    assert jks_path in record["stores"]
    # ... then the user tampers with the truststore and makes the record vouch for the new bytes.
    tampered = b"not a truststore at all"
    run_as(service_user, f"""
import hashlib, json
p = {str(state / 'fingerprints.json')!r}
r = json.load(open(p))
r["stores"][{jks_path!r}][0] = hashlib.sha256({tampered!r}).hexdigest()
json.dump(r, open(p, "w"))
open({jks_path!r} + ".new", "wb").write({tampered!r})
import os; os.rename({jks_path!r} + ".new", {jks_path!r})
""")
    result = _reconcile(node, state)
    assert result.rc == 0, result.out + result.err
    assert "record is ignored" in result.err and str(state) in result.err, result.err
    artifact = result.json()["artifacts"]["authorities.jks"]
    assert artifact["action"] == "written", artifact
    assert set(keytool_list(node.ssl_dir / "authorities.jks")) >= {HOST}


def test_fifo_in_the_state_dir_does_not_hang_root_or_the_user(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user)
    chown_tree(state, service_user)
    for name in ("fingerprints.json", "fingerprints.key", "last-report.json"):
        run_as(service_user, f"import os; os.mkfifo({str(state / name)!r})")
    result = _reconcile(node, state)  # as root: the dir is the user's, so the record is not even read
    assert result.rc == 0, result.out + result.err
    assert "ignored" in result.err
    for name in ("fingerprints.json", "fingerprints.key"):
        run_as(service_user, f"import os; os.unlink({str(state / name)!r}); os.mkfifo({str(state / name)!r})")
    own = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", "check", "--ssl-dir",
                                 node.ssl_dir, "--desired-state", node.desired, "--state-dir", state),
                         capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(world)})
    assert "Traceback" not in own.stderr and "FIFO" in own.stderr, own.stdout + own.stderr


def test_web_rollback_never_copies_a_root_only_file_through_planted_links(world: Path, ca: Issued,
                                                                          service_user) -> None:
    node, state = _node(world, ca, service_user, web=True)
    shadow, secret = outside_secret(world)
    before = state_of(shadow)
    for name in ("ssl-web.key.previous", "ssl-web.crt.previous"):
        run_as(service_user, f"import os; os.symlink({str(shadow)!r}, {str(node.ssl_dir / name)!r})")
    listing = snapshot(node.ssl_dir)
    result = run_cli("web", "rollback", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired,
                     "--state-dir", state)
    assert result.rc == 1, result.out + result.err
    assert "ssl-web.key.previous" in result.err and "symlink" in result.err, result.err
    assert state_of(shadow) == before
    assert snapshot(node.ssl_dir) == listing
    assert not any(secret in p.read_bytes() for p in node.ssl_dir.rglob("*") if p.is_file() and not p.is_symlink())


def test_web_install_never_copies_a_root_only_file_through_a_planted_link(world: Path, ca: Issued,
                                                                         service_user) -> None:
    node, state = _node(world, ca, service_user, web=True)
    shadow, secret = outside_secret(world)
    before = state_of(shadow)
    new = make_host(ca, HOST)
    cert, key = write(world / "new.crt", new.cert_pem()), write(world / "new.key", new.key_pem(), 0o600)
    run_as(service_user, f"""
import os
p = {str(node.ssl_dir / 'ssl-web.key')!r}
os.unlink(p)
os.symlink({str(shadow)!r}, p)
""")
    result = run_cli("web", "install", "--cert", cert, "--key", key, "--ssl-dir", node.ssl_dir,
                     "--desired-state", node.desired, "--state-dir", state)
    assert result.rc == 1, result.out + result.err
    assert "ssl-web.key" in result.err and "symlink" in result.err, result.err
    assert state_of(shadow) == before
    assert not any(secret in p.read_bytes() for p in node.ssl_dir.rglob("*") if p.is_file() and not p.is_symlink())


def test_web_install_does_not_hang_on_a_fifo_in_authorities(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user, web=True)
    run_as(service_user, f"import os; os.mkfifo({str(node.ssl_dir / 'authorities' / 'evil.crt')!r})")
    new = make_host(ca, HOST)
    cert, key = write(world / "new.crt", new.cert_pem()), write(world / "new.key", new.key_pem(), 0o600)
    t0 = time.monotonic()
    result = run_cli("web", "install", "--cert", cert, "--key", key, "--ssl-dir", node.ssl_dir,
                     "--desired-state", node.desired, "--state-dir", state, timeout=120)
    assert "Traceback" not in result.err, result.err
    assert "verified against its issuer" in result.out, result.out + result.err
    for name in ("ssl-web.key", "ssl-web.crt", "ssl-web.key.previous"):
        assert (node.ssl_dir / name).stat().st_uid == service_user.pw_uid, f"{name} now root's: the service is locked out"
    assert any(f["file"] == "authorities/evil.crt" and "FIFO" in f["reason"]
               for f in json.loads(_reconcile(node, state).out)["findings"])
    assert time.monotonic() - t0 < 110


def test_root_reconcile_on_the_users_dir_works_and_keeps_modes(world: Path, ca: Issued, service_user) -> None:
    node, state = _node(world, ca, service_user)
    result = _reconcile(node, state)
    assert result.rc == 0 and result.json()["status"] == "ok", result.out + result.err
    st = (node.ssl_dir / "ssl.keystore").stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == service_user.pw_uid, "a store root wrote there must stay readable by the service"
    key = node.ssl_dir / "ssl.key"
    assert key.stat().st_uid == service_user.pw_uid, "root took over a source it only reads"
    digest = hashlib.sha256(key.read_bytes()).hexdigest()
    assert _reconcile(node, state).rc == 0
    assert hashlib.sha256(key.read_bytes()).hexdigest() == digest


def test_mode_fix_acts_only_on_the_inode_that_was_checked(world: Path, service_user) -> None:
    """The race above, made certain: the store is swapped for a link after its stat was taken."""
    from sslreconciler.fsio import open_dir, set_attributes_at

    ssl_dir = world / "ssl"
    ssl_dir.mkdir()
    write(ssl_dir / "ssl.keystore", b"store bytes", 0o644)
    chown_tree(ssl_dir, service_user)
    shadow, _ = outside_secret(world)
    before = state_of(shadow)
    checked = (ssl_dir / "ssl.keystore").lstat()
    run_as(service_user, f"""
import os
d = {str(ssl_dir)!r}
os.link(d + "/ssl.keystore", d + "/kept")  # its inode stays in use: the next file gets another
os.symlink({str(shadow)!r}, d + "/link")
os.rename(d + "/link", d + "/ssl.keystore")
""")
    fd = open_dir(ssl_dir)
    try:
        try:
            set_attributes_at(fd, "ssl.keystore", checked, 0o644, 0, 0)
        except OSError as exc:
            assert "replaced while it was checked" in str(exc)
        else:
            raise AssertionError("a swapped-in symlink was acted on")
        # a real file swapped in (another inode) is refused the same way
        run_as(service_user, f"""
import os
d = {str(ssl_dir)!r}
open(d + "/other", "w").write("x")
os.rename(d + "/other", d + "/ssl.keystore")
""")
        try:
            set_attributes_at(fd, "ssl.keystore", checked, 0o600, 0, 0)
        except OSError as exc:
            assert "replaced while it was checked" in str(exc)
        else:
            raise AssertionError("another inode was acted on")
    finally:
        os.close(fd)
    assert state_of(shadow) == before
    assert (ssl_dir / "ssl.keystore").stat().st_uid == service_user.pw_uid


def test_root_writes_into_the_service_users_dir_as_that_user_links_included(world: Path, ca: Issued,
                                                                           service_user) -> None:
    """Everything root creates in a directory the service user owns is that user's: the stores and the
    hash links, so the user can manage all of it and nothing there is root's."""
    node, state = _node(world, ca, service_user)
    result = _reconcile(node, state)
    assert result.rc == 0, result.out + result.err
    made = [*node.ssl_dir.glob("*.keystore"), *node.ssl_dir.glob("*.p12"), node.ssl_dir / "authorities.jks",
            *(node.ssl_dir / "authorities").glob("*.0")]
    assert len(made) >= 6, made
    for path in made:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (service_user.pw_uid, service_user.pw_gid), path
