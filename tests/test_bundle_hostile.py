"""Bundles against a hostile history: replays after a rotation, a record the service user wrote, root-owned
files in the service user's ssl dir, a retired CA saved again with other line ends.

Root runs ``pki install-bundle`` (the real CLI) on an ssl dir a throwaway user owns, with a state dir of
its own, as on a node where the daemon runs as the service user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ansiblekit import BIN, ansible_env, link_collection
from bundlekit import NEW_CA as NEW
from bundlekit import OLD_CA as OLD
from bundlekit import install as _install
from bundlekit import make_rotation
from bundlekit import service_node as _node
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from daemonkit import RunningDaemon
from tarkit import members_of, tgz
from userkit import as_user, chown_tree, run_as

from conftest import snapshot
from pkitools import Node, make_ca, write

HOST = "sec1.example.com"
RECORD = "bundle-record.json"  # in the state dir, root's own
LEGACY_RECORD = "bundle-authorities.json"  # where earlier versions kept it: the service user's ssl dir


@pytest.fixture(scope="module")
def rotation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The four bundles a node gets through a complete CA rotation, made in that order."""
    return make_rotation(tmp_path_factory.mktemp("rotation"))


def _installed(node: Node, *bundles: Path) -> None:
    for bundle in bundles:
        result = _install(node, bundle)
        assert result.rc == 0, (bundle.name, result.out, result.err)


def _cas(node: Node) -> set[str]:
    return {p.name for p in (node.ssl_dir / "authorities").glob("*.crt")}


def _der_sha256(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


def _issuer_of_ssl_crt(node: Node) -> str:
    return x509.load_pem_x509_certificate((node.ssl_dir / "ssl.crt").read_bytes()).issuer.rfc4514_string()


# -- 7: replays ------------------------------------------------------------------------------------------

def test_an_older_bundle_is_refused_after_a_complete_rotation(rotation, world: Path, service_user) -> None:
    node = _node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"], rotation["retired"])
    assert _cas(node) == {f"{NEW}.crt"} and _issuer_of_ssl_crt(node) == f"CN={NEW}"
    before = snapshot(node.ssl_dir)
    for step in ("pre", "both", "reissued"):  # each would put the retired CA back; "pre" also drops the new one
        result = _install(node, rotation[step])
        assert result.rc == 1, (step, result.out, result.err)
        assert "older than the bundle this node installed" in result.err and str(rotation[step]) in result.err
        assert "nothing installed" in result.err
        assert snapshot(node.ssl_dir) == before, step
    again = _install(node, rotation["retired"])  # the same bundle once more is no replay: nothing to do
    assert again.rc == 0, again.err
    assert snapshot(node.ssl_dir) == before


def test_without_any_record_the_ca_the_node_certificate_chains_to_is_never_dropped(rotation, world: Path,
                                                                                   service_user) -> None:
    """The state dir's record lost (a new state dir, a wiped /var/lib): the pre-rotation bundle would swap the
    node's certificate for an older one signed by the retired CA and leave the current CA behind; the
    mid-rotation one would bring that certificate back too. A node never takes an older certificate."""
    node = _node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"], rotation["retired"])
    for record in (node.root / "state" / RECORD, node.ssl_dir / LEGACY_RECORD):
        record.unlink(missing_ok=True)
    before = snapshot(node.ssl_dir)
    for step in ("pre", "both"):  # each would bring back the certificate the retired CA signed
        result = _install(node, rotation[step])
        assert result.rc == 1, (step, result.out, result.err)
        assert f"CN={NEW}" in result.err and "older" in result.err and "nothing installed" in result.err
        assert ("carries no CA that the current one chains to" in result.err) == (step == "pre")
        assert snapshot(node.ssl_dir) == before


def test_a_node_that_skipped_the_reissue_still_takes_the_retiring_bundle(rotation, world: Path,
                                                                        service_user) -> None:
    """Newer bundle, newer certificate from the new CA: the old CA goes although ssl.crt was signed by it."""
    node = _node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"])
    assert _issuer_of_ssl_crt(node) == f"CN={OLD}"
    result = _install(node, rotation["retired"])
    assert result.rc == 0, result.err
    assert f"removed authorities/{OLD}.crt" in result.out
    assert _cas(node) == {f"{NEW}.crt"} and _issuer_of_ssl_crt(node) == f"CN={NEW}"


def test_a_bundle_from_before_the_sequence_is_refused_once_a_node_has_one(rotation, world: Path, service_user,
                                                                         tmp_path: Path) -> None:
    """A bundle an earlier version made (no sequence in its manifest) cannot be ordered: refused by a node
    that installed a sequenced one, accepted by one that never did (the upgrade path)."""
    legacy = tmp_path / "legacy.tgz"
    members = []
    for member, data in members_of(rotation["retired"]):
        if member.name == "manifest.sig":
            continue  # an earlier version signed nothing
        if member.name == "manifest.json":
            manifest = json.loads(data)
            assert isinstance(manifest.pop("sequence"), int)
            data = json.dumps(manifest).encode()
            member.size = len(data)
        members.append((member, data))
    legacy.write_bytes(tgz(members))
    node = _node(world, service_user)
    _installed(node, rotation["pre"])
    result = _install(node, legacy)
    assert result.rc == 1 and "no sequence" in result.err and "nothing installed" in result.err, result.err
    fresh = _node(world, service_user, "fresh")
    _installed(fresh, legacy, rotation["retired"])  # before any sequenced bundle: as before; then ordered


# -- 8: the record root acts on ---------------------------------------------------------------------------

def _plant_records(user, node: Node, outside: Path) -> None:
    """What the service user writes to steer root: the record in its ssl dir (where earlier versions kept
    it) and, where it owns the state dir, the record there, both listing the admin's own CA file."""
    pem = outside.read_bytes()
    legacy = {"files": {outside.name: hashlib.sha256(pem).hexdigest()}}
    forged = {"format": 1, "sequence": 0, "authorities": {outside.name: _der_sha256(pem)}}
    _replace_as(user, node.ssl_dir / LEGACY_RECORD, json.dumps(legacy).encode())
    state = node.root / "state"
    if state.stat().st_uid == user.pw_uid:
        _replace_as(user, state / RECORD, json.dumps(forged).encode())


def _replace_as(user, path: Path, data: bytes) -> None:
    """The user replaces ``path`` (which it cannot write, but whose directory it owns) with its own file."""
    run_as(user, f"import os, pathlib; t = pathlib.Path({str(path) + '.new'!r}); t.write_bytes({data!r}); "
                 f"os.replace(t, {str(path)!r})")


@pytest.mark.parametrize("state_owner", ["root", "service"])
def test_root_never_deletes_what_a_record_the_service_user_wrote_lists(rotation, world: Path, service_user,
                                                                       state_owner: str) -> None:
    node = _node(world, service_user)
    if state_owner == "service":  # /var/lib/sslreconciler under systemd: the service user's
        chown_tree(node.root / "state", service_user)
    _installed(node, rotation["pre"])
    authorities = node.ssl_dir / "authorities"
    os.chown(authorities, 0, 0)  # the admin keeps authorities/ root's: the service user cannot delete here
    outside = write(authorities / "outside-ca.crt", make_ca("outside.example.org").cert_pem())
    _plant_records(service_user, node, outside)
    result = _install(node, rotation["both"])
    assert result.rc == 0, result.err
    assert outside.exists(), "root deleted the admin's CA file on the service user's word"
    assert "removed authorities/outside-ca" not in result.out
    if state_owner == "service":
        assert "ignored" in result.err and RECORD in result.err, result.err
    record = (node.root / "state" / RECORD).stat()  # root's again, whoever owns the directory
    assert record.st_uid == 0 and not record.st_mode & 0o022


def test_the_service_user_cannot_keep_a_retired_ca_by_editing_the_record(rotation, world: Path,
                                                                        service_user) -> None:
    node = _node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"])
    _replace_as(service_user, node.ssl_dir / LEGACY_RECORD, b'{"files": {}}')
    result = _install(node, rotation["retired"])
    assert result.rc == 0, result.err
    assert _cas(node) == {f"{NEW}.crt"}, "the retired CA stayed trusted"


def test_an_upgraded_node_takes_over_the_record_root_wrote_in_the_ssl_dir(rotation, world: Path,
                                                                          service_user) -> None:
    """A node whose bundles an earlier version installed: its root-owned ssl-dir record still lets the
    retiring bundle remove the old CA, once; the record then lives in the state dir only."""
    node = _node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"])
    (node.root / "state" / RECORD).unlink()  # as an earlier version left it: the record in the ssl dir, root's
    authorities = node.ssl_dir / "authorities"
    legacy = {"files": {name: hashlib.sha256((authorities / name).read_bytes()).hexdigest()
                        for name in (f"{OLD}.crt", f"{NEW}.crt")}}
    write(node.ssl_dir / LEGACY_RECORD, json.dumps(legacy).encode())
    result = _install(node, rotation["retired"])
    assert result.rc == 0, result.err
    assert f"removed authorities/{OLD}.crt" in result.out and _cas(node) == {f"{NEW}.crt"}
    assert not (node.ssl_dir / LEGACY_RECORD).exists()
    record = json.loads((node.root / "state" / RECORD).read_text())
    (entry,) = record["ssl_dirs"].values()
    assert set(entry["authorities"]) == {f"{NEW}.crt"} and isinstance(entry["sequence"], int)


# -- 9: what root creates in the service user's ssl dir ----------------------------------------------------

def test_install_bundle_leaves_nothing_of_roots_in_a_fresh_service_ssl_dir(rotation, world: Path,
                                                                           service_user) -> None:
    node = _node(world, service_user)
    _installed(node, rotation["both"])
    made = [node.ssl_dir, *node.ssl_dir.rglob("*")]
    assert {p.name for p in made} >= {"authorities", f"{OLD}.crt", f"{NEW}.crt", "ssl.key", "ssl.keystore"}
    assert any(p.is_symlink() for p in (node.ssl_dir / "authorities").iterdir())
    for path in made:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (service_user.pw_uid, service_user.pw_gid), path
    assert not (node.ssl_dir / LEGACY_RECORD).exists()  # root's record is not the service user's to edit
    record = (node.root / "state" / RECORD).stat()
    assert record.st_uid == 0 and not record.st_mode & 0o022


def test_the_daemon_as_the_service_user_links_a_ca_added_after_roots_install(rotation, world: Path,
                                                                            service_user) -> None:
    node = _node(world, service_user)
    _installed(node, rotation["pre"])
    d = RunningDaemon(node, world / "daemon", wrapper=as_user(service_user))
    chown_tree(world / "daemon", service_user)
    chown_tree(d.sockdir, service_user)
    try:
        d.start()
        d.wait_for(lambda doc: doc.get("status") == "ok", timeout=120, what="the daemon ok")
        added = make_ca("added.example.org")
        write(node.ssl_dir / "authorities" / "added.crt", added.cert_pem())  # the admin adds a CA
        doc = d.wait_for(lambda doc: "added" in doc.get("trust", {}).get("authorities", []), timeout=120,
                         what="the added CA in the trust set")
        assert doc["status"] == "ok", doc.get("findings")
        assert not [f for f in doc.get("findings", []) if f.get("code") == "link-failed"], doc["findings"]
        links = [p for p in (node.ssl_dir / "authorities").iterdir() if p.is_symlink()
                 and os.readlink(p) == "added.crt"]
        assert links and links[0].lstat().st_uid == service_user.pw_uid
    finally:
        d.close()


# -- 14: the same certificate in other bytes --------------------------------------------------------------

def test_a_retired_ca_saved_with_crlf_line_ends_is_removed_and_a_copy_is_named(rotation, world: Path,
                                                                               service_user) -> None:
    node = _node(world, service_user)
    _installed(node, rotation["pre"], rotation["both"], rotation["reissued"])
    authorities = node.ssl_dir / "authorities"
    old_pem = (authorities / f"{OLD}.crt").read_bytes()
    (authorities / f"{OLD}.crt").write_bytes(old_pem.replace(b"\n", b"\r\n"))  # an editor's CRLF save
    copy = write(authorities / "admin-copy.crt", old_pem)  # an admin's own copy: never deleted, but named
    result = _install(node, rotation["retired"], "--json")
    assert result.rc == 0, result.err
    assert not (authorities / f"{OLD}.crt").exists(), "the CRLF copy of the retired CA stayed trusted"
    assert copy.exists()
    assert "admin-copy.crt" in result.err and OLD in result.err and "left" in result.err, result.err
    assert f"{OLD}.crt" not in _cas(node)


@pytest.mark.slow
def test_the_ansible_install_role_gives_authorities_to_the_ssl_dir_owner(world: Path, service_user) -> None:
    """The install role made ``authorities/`` root's in the service user's ssl dir, as install-bundle did."""
    node = _node(world, service_user)
    env = ansible_env(world / "ansible")
    link_collection(world / "ansible")
    state = node.root / "state"
    variables = {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "sslreconciler_host": HOST, "sslreconciler_install_method": "none",
        "sslreconciler_service_manager": "background", "sslreconciler_bin": str(BIN / "sslreconciler"),
        "sslreconciler_ssl_dir": str(node.ssl_dir), "sslreconciler_state_dir": str(state),
        "sslreconciler_config": str(node.root / "etc" / "sslreconciler.toml"),
        "sslreconciler_desired_state_file": str(node.root / "etc" / "desired-state.json"),
        "sslreconciler_socket": str(world / "run" / "health.sock"), "sslreconciler_health_timeout": 120,
    }
    (world / "vars.json").write_text(json.dumps(variables))
    playbook = world / "install.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n"
                        "    - role: sipxpbx.sslreconciler.install\n")
    try:
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-e", f"@{world / 'vars.json'}",
                               str(playbook)], capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    finally:
        pidfile = state / "daemon.pid"
        if pidfile.exists():  # the daemon the role started in the background
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
    st = (node.ssl_dir / "authorities").stat()
    assert (st.st_uid, st.st_gid) == (service_user.pw_uid, service_user.pw_gid)
