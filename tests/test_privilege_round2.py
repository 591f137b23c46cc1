"""Issue 21, round 2 of the privilege boundary: root acts on no configuration another user could write,
and the key policy judges DSA.

Root runs the real CLI on a node whose ssl dir a throwaway user owns (as sipx owns /etc/sipxpbx/ssl);
what that user could write is the desired state, the settings file, a directory above either, a link on
the way, a password file. A hook that would leave a marker shows whether root would have run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemonkit import RunningDaemon, fingerprint
from userkit import as_user, chown_tree, run_as

from conftest import keytool_list, openssl, reconcile, run_cli
from pkitools import Issued, Node, make_host, seed_node, write
from trustkit import cert

HOST = "master.example.com"


def _node(world: Path, ca: Issued, user, marker: Path) -> tuple[Node, Path]:
    """A node in ``world`` whose ssl dir ``user`` owns; its root-owned desired state has a hook that
    touches ``marker`` after the first reconcile writes ssl.keystore. Root's state dir beside it."""
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, user)
    _hooked(node.desired, marker)
    state = world / "state"
    state.mkdir(mode=0o700)
    return node, state


def _hooked(desired: Path, marker: Path, **extra: object) -> None:
    desired.write_text(json.dumps({
        "hostname": HOST,
        "hooks": [{"name": "marker", "after": ["ssl.keystore"], "command": ["/usr/bin/touch", str(marker)]}],
        **extra,
    }))
    desired.chmod(0o644)


def _root_reconcile(node: Node, state: Path, *extra: str | Path, desired: Path | None = None):
    return run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", desired or node.desired,
                   "--state-dir", state, "--json", *extra)


def _refused(result, named: Path, marker: Path) -> None:
    """Exit 2, a config error naming the file and the fix, nothing reconciled, no hook run."""
    assert result.rc == 2, result.out + result.err
    assert "Traceback" not in result.err, result.err
    assert f"config error: {named}:" in result.err, result.err
    assert "chown root:root" in result.err, result.err
    assert not marker.exists(), "root ran a hook from a file another user could write"
    assert result.out == "", result.out


# --- item 4: the desired state and the settings root acts on ---------------------------------------------


def test_root_runs_no_hook_from_a_desired_state_the_service_user_owns(world: Path, ca: Issued, service_user) -> None:
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    os.chown(node.desired, service_user.pw_uid, service_user.pw_gid)  # the user added the hook
    result = _root_reconcile(node, state)
    _refused(result, node.desired, marker)
    assert f"is owned by uid {service_user.pw_uid}" in result.err, result.err
    assert not (node.ssl_dir / "ssl.keystore").exists()  # refused before anything was done
    for command in ("check", "run"):  # the dry run and root's daemon refuse it alike
        other = run_cli(command, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--state-dir", state,
                        "--socket", world / "health.sock", timeout=60, process=command == "run")
        _refused(other, node.desired, marker)


@pytest.mark.parametrize("mode", [0o664, 0o646], ids=["group-writable", "other-writable"])
def test_root_refuses_a_desired_state_others_may_write(world: Path, ca: Issued, service_user, mode: int) -> None:
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    os.chown(node.desired, 0, service_user.pw_gid)
    node.desired.chmod(mode)
    result = _root_reconcile(node, state)
    _refused(result, node.desired, marker)
    assert f"mode {mode:04o}" in result.err, result.err


def test_root_refuses_a_root_owned_desired_state_in_a_directory_the_user_owns(world: Path, ca: Issued, service_user) -> None:
    """The user cannot change the file, but can rename it away and put another in its place."""
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    conf = world / "conf"
    conf.mkdir()
    desired = conf / "desired-state.json"
    _hooked(desired, marker)
    os.chown(conf, service_user.pw_uid, service_user.pw_gid)
    result = _root_reconcile(node, state, desired=desired)
    _refused(result, desired, marker)
    assert f"directory {conf} is owned by uid {service_user.pw_uid}" in result.err, result.err


def test_root_refuses_a_desired_state_reached_through_the_users_link_or_directory(world: Path, ca: Issued, service_user) -> None:
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    # a link the user owns, to a good root-owned file
    link = world / "by-user-link.json"
    link.symlink_to(node.desired)
    os.lchown(link, service_user.pw_uid, service_user.pw_gid)
    result = _root_reconcile(node, state, desired=link)
    _refused(result, link, marker)
    assert f"symlink {link} is owned by uid {service_user.pw_uid}" in result.err, result.err
    # root's own link into a directory the user owns
    theirs = world / "theirs"
    theirs.mkdir()
    _hooked(theirs / "desired.json", marker)
    os.chown(theirs, service_user.pw_uid, service_user.pw_gid)
    via = world / "root-link"
    via.symlink_to(theirs)
    result = _root_reconcile(node, state, desired=via / "desired.json")
    _refused(result, via / "desired.json", marker)
    assert f"directory {theirs} is owned by uid {service_user.pw_uid}" in result.err, result.err


@pytest.mark.parametrize("how", ["owned by the user", "group-writable", "in the user's directory"])
def test_root_refuses_a_settings_file_others_may_write(world: Path, ca: Issued, service_user, how: str) -> None:
    """The settings name the desired state: whoever writes them chooses root's hooks."""
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    where = world / "etc"
    where.mkdir()
    config = where / "sslreconciler.toml"
    config.write_text(f'ssl_dir = "{node.ssl_dir}"\ndesired_state = "{node.desired}"\nstate_dir = "{state}"\n')
    config.chmod(0o644)
    if how == "owned by the user":
        os.chown(config, service_user.pw_uid, service_user.pw_gid)
    elif how == "group-writable":
        config.chmod(0o664)
    else:
        os.chown(where, service_user.pw_uid, service_user.pw_gid)
    result = run_cli("reconcile", "--config", config, "--json")
    _refused(result, config, marker)


def test_roots_daemon_loads_no_hook_the_user_adds_to_its_desired_state(world: Path, ca: Issued,
                                                                         service_user) -> None:
    """A daemon run as root (Ansible's background mode) keeps its last valid desired state, with a
    desired-state finding naming the file, when the service user takes the file over and adds a hook."""
    marker = world / "marker"
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, service_user)
    daemon = RunningDaemon(node, world / "d", settings="grace_period = 0").start()
    try:
        daemon.wait_for(lambda doc: doc["status"] == "ok", timeout=120, what="the first reconcile")
        os.chown(node.desired, service_user.pw_uid, service_user.pw_gid)
        hooked = {"hostname": HOST, "hooks": [{"after": ["ssl.keystore"], "command": ["/usr/bin/touch", str(marker)]}]}
        run_as(service_user, f"open({str(node.desired)!r}, 'w').write({json.dumps(hooked)!r})")
        doc = daemon.wait_for(lambda doc: any(f["code"] == "desired-state" for f in doc["findings"]), timeout=120,
                              what="the desired state refused")
        reason = next(f["reason"] for f in doc["findings"] if f["code"] == "desired-state")
        assert str(node.desired) in reason + json.dumps(doc) and f"uid {service_user.pw_uid}" in reason, reason
        new = make_host(ca, HOST)  # the stores are rewritten: a loaded hook would run now
        run_as(service_user, f"""
import os
d = {str(node.ssl_dir)!r}
open(os.path.join(d, "k.new"), "wb").write({new.key_pem()!r}); os.chmod(os.path.join(d, "k.new"), 0o600)
open(os.path.join(d, "c.new"), "wb").write({new.cert_pem()!r})
os.rename(os.path.join(d, "k.new"), os.path.join(d, "ssl.key")); os.rename(os.path.join(d, "c.new"), os.path.join(d, "ssl.crt"))
""")
        daemon.wait_for(lambda doc: fingerprint(doc, "ssl.keystore") == new.fingerprint(), timeout=120,
                        what="the new pair in the stores")
        assert not marker.exists(), "root's daemon ran a hook the service user added"
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        daemon.close()


def test_root_runs_the_hooks_of_a_root_owned_desired_state(world: Path, ca: Issued, service_user) -> None:
    """Root's own 0644 file in root's directories (and through root's own link): hooks run as before."""
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    etc = world / "etc"
    etc.mkdir()
    link = etc / "desired-state.json"
    link.symlink_to(node.desired)
    config = etc / "sslreconciler.toml"
    config.write_text(f'ssl_dir = "{node.ssl_dir}"\ndesired_state = "{link}"\nstate_dir = "{state}"\n')
    result = run_cli("reconcile", "--config", config, "--json")
    assert result.rc == 0, result.out + result.err
    assert result.json()["hooks"]["marker"]["outcome"] == "ok", result.out
    assert marker.exists()


def test_the_service_user_runs_its_own_files_as_before(world: Path, ca: Issued, service_user) -> None:
    """Not root: a desired state and settings only that user (or root) can write are its own to use."""
    marker = world / "mine" / "marker"
    node = seed_node(world / "node", HOST, ca)
    mine = world / "mine"
    mine.mkdir()
    _hooked(node.desired, marker)
    chown_tree(world / "node", service_user)
    chown_tree(mine, service_user)
    config = mine / "sslreconciler.toml"
    config.write_text(f'ssl_dir = "{node.ssl_dir}"\ndesired_state = "{node.desired}"\nstate_dir = "{mine / "st"}"\n')
    os.chown(config, service_user.pw_uid, service_user.pw_gid)
    proc = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", "reconcile", "--config", config,
                                  "--json"), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SSLRECONCILER_STATE_DIR": str(mine / "st")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert marker.exists() and marker.stat().st_uid == service_user.pw_uid


def test_root_reads_no_password_from_a_file_the_user_could_write(world: Path, ca: Issued, service_user) -> None:
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    password = node.ssl_dir / "store-password"  # in the user's directory: swappable for a link to /etc/shadow
    password.write_text("their-choice\n")
    os.chown(password, service_user.pw_uid, service_user.pw_gid)
    _hooked(node.desired, marker, password={"file": str(password)})
    result = _root_reconcile(node, state)
    assert result.rc == 1, result.out + result.err
    found = [f for f in result.json()["findings"] if f["code"] == "password"]
    assert found and str(password) in found[0]["reason"], result.out
    assert f"is owned by uid {service_user.pw_uid}" in found[0]["reason"], found
    assert not (node.ssl_dir / "ssl.keystore").exists() and not marker.exists()


# --- item 16: DSA in the key policy ------------------------------------------------------------------------


def test_a_1024_bit_dsa_ca_is_judged_by_the_key_policy(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    weak = cert("Weak DSA CA", kind="dsa1024")
    ca_file = write(node.ssl_dir / "authorities" / "weak-dsa.crt", weak.cert_pem())
    text = openssl("x509", "-in", ca_file, "-noout", "-text").stdout
    assert "Public Key Algorithm: dsaEncryption" in text and "Public-Key: (1024 bit)" in text, text

    result = reconcile(node)
    assert result.rc == 1, result.out + result.err
    found = [f for f in result.json()["findings"] if f["file"] == "authorities/weak-dsa.crt"]
    assert [(f["code"], f["level"]) for f in found] == [("weak-dsa-key", "error")], result.out
    assert "1024-bit DSA key" in found[0]["reason"] and "(policy rule weak-dsa-key)" in found[0]["reason"]
    assert "weak-dsa" not in keytool_list(node.ssl_dir / "authorities.jks")  # kept out of the truststore

    node.desired.write_text(json.dumps({"hostname": HOST, "policy": {"weak_dsa_key": "warning"}}))
    result = reconcile(node)
    assert result.rc == 0, result.out + result.err
    found = [f for f in result.json()["findings"] if f["file"] == "authorities/weak-dsa.crt"]
    assert [(f["code"], f["level"]) for f in found] == [("weak-dsa-key", "warning")], result.out
    assert "weak-dsa" in keytool_list(node.ssl_dir / "authorities.jks")


# --- the state-dir records root writes in the service's state dir are the service's -----------------------


def test_records_root_writes_in_the_services_state_dir_belong_to_the_service(world: Path, ca: Issued,
                                                                             service_user) -> None:
    """As the stores: a 0600 record owned by root would be unreadable to the daemon that owns the dir."""
    marker = world / "marker"
    node, state = _node(world, ca, service_user, marker)
    os.chown(state, service_user.pw_uid, service_user.pw_gid)
    result = _root_reconcile(node, state)
    assert result.rc == 0, result.out + result.err
    for name in ("fingerprints.json", "fingerprints.key", "last-report.json"):
        st = (state / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (service_user.pw_uid, service_user.pw_gid, 0o600), name
