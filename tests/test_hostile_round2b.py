"""Issue 21, second review (b): an ACME record with times in the future, a bundle manifest nested deep, a
bundle sequence beyond what a master can make, an ACME webroot reached through another user's symlink.

Root runs the real CLI; where the item is about a user, on directories a throwaway user owns.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from acmekit import Pebble, WebrootServer, acme_block
from bundlekit import ok
from tarkit import members_of, tgz
from userkit import chown_tree

from conftest import run_cli, snapshot
from pkitools import Issued, Node, seed_node

HOST = "pbx.example.com"
NODE_HOST = "sec1.example.com"
DEAD_DIRECTORY = "https://localhost:9/dir"  # nothing listens: every attempt fails at once


def _acme(node: Node, state: Path, *args: str):
    return run_cli("acme", *args, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--state-dir", state,
                   timeout=300)


# -- D: times in the future in the ACME record -------------------------------------------------------------

@pytest.mark.parametrize("when", ["9999-12-31T23:59:59Z", "2999-01-01T00:00:00Z"])
def test_a_future_failure_time_in_the_acme_record_neither_crashes_nor_stops_renewals(tmp_path: Path, ca: Issued,
                                                                                     when: str) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)  # no web pair: a renewal is due
    state = tmp_path / "state"
    node.desired.write_text(json.dumps({"hostname": HOST, "acme": {
        "directory": DEAD_DIRECTORY, "names": [HOST], "challenge": {"webroot": str(tmp_path / "www")}}}))
    first = _acme(node, state, "renew")  # fails (nothing listens), and records the real config key
    assert first.rc != 0 and "Traceback" not in first.err, first.out + first.err
    record = json.loads((state / "acme.json").read_text())
    assert record["failed_config_key"] and record["failures"] == 1
    record.update(failures=3, last_failure=when)
    for command in ("status", "renew"):
        (state / "acme.json").write_text(json.dumps(record))  # the service user's state dir: theirs to write
        result = _acme(node, state, command)
        text = result.out + result.err
        assert "Traceback" not in text and "OverflowError" not in text, text
        assert "backing off" not in text and f"until {when[:4]}" not in text, text  # no back-off until then
        assert "last_failure" in text and "in the future" in text and "ignored" in text, text  # the flaw named
    assert "cannot reach https://localhost:9/dir" in text  # renew tried (and failed: nothing listens)


# -- E: a manifest nested deep -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("staged")
    staging = base / "staging"
    ok("pki", "init-ca", "--staging", staging, "--name", "ca.example.com")
    ok("pki", "issue", "--staging", staging, NODE_HOST, "--sip-domain", "example.com")
    bundle = base / "real.tgz"
    ok("pki", "bundle", "--staging", staging, NODE_HOST, "-o", bundle)
    return {"staging": staging, "bundle": bundle, "base": base}


def _repack(src: Path, out: Path, change) -> Path:
    """``src`` with its manifest as ``change`` leaves it (given the manifest's text, gives the new text)."""
    members = members_of(src)
    for i, (member, data) in enumerate(members):
        if member.name == "manifest.json":
            data = change(data.decode()).encode()
            member.size = len(data)
            members[i] = (member, data)
    out.write_bytes(tgz(members))
    return out


def _node(base: Path) -> Node:
    (base / "ssl").mkdir(parents=True)
    (base / "desired-state.json").write_text(json.dumps({"hostname": NODE_HOST}))
    return Node(base, NODE_HOST, None, None)  # type: ignore[arg-type]  # no seeded pair: bundles bring it


def _install(node: Node, bundle: Path):
    return run_cli("pki", "install-bundle", bundle, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired,
                   "--state-dir", node.root / "state")


def test_a_deeply_nested_manifest_is_an_invalid_bundle(staged, tmp_path: Path) -> None:
    deep = _repack(staged["bundle"], tmp_path / "deep.tgz",
                   lambda text: text.rstrip().rstrip("}") + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    node = _node(tmp_path / "node")
    result = _install(node, deep)
    assert "Traceback" not in result.err and "RecursionError" not in result.err, result.err[-2000:]
    assert result.rc == 1 and "manifest.json is not valid" in result.err and "nothing installed" in result.err
    assert str(deep) in result.err and len(result.err) < 2000
    assert snapshot(node.ssl_dir) == {}


# -- F: sequences beyond what a master can make --------------------------------------------------------------

def _with_sequence(staged, tmp_path: Path, name: str, sequence: int) -> Path:
    def change(text: str) -> str:
        manifest = json.loads(text)
        manifest["sequence"] = 0  # replaced as text: json.dumps of 10**4000 is refused by Python's int limit
        return json.dumps(manifest).replace('"sequence": 0', f'"sequence": {sequence}')
    return _repack(staged["bundle"], tmp_path / name, change)


@pytest.mark.parametrize("ahead", ["huge", "two-days"])
def test_a_bundle_sequence_beyond_what_a_master_can_make_is_refused(staged, tmp_path: Path, ahead: str) -> None:
    now_us = time.time_ns() // 1000
    sequence = 10**4000 if ahead == "huge" else now_us + 2 * 86_400 * 10**6
    bad = _with_sequence(staged, tmp_path, "ahead.tgz", sequence)
    node = _node(tmp_path / "node")
    result = _install(node, bad)
    assert result.rc == 1 and str(bad) in result.err and "nothing installed" in result.err, result.out + result.err
    assert len(result.err) < 2000, result.err[:3000]
    if ahead == "huge":  # refused while parsing, before the digits become a number
        assert "manifest.json is not valid (holds a number of more than 20 digits)" in result.err, result.err
    else:
        assert "sequence" in result.err and "clock" in result.err and "bundle-sequence.json" in result.err
    assert snapshot(node.ssl_dir) == {} and not (node.root / "state" / "bundle-record.json").exists()
    # A master whose clock was an hour fast made a bundle: fine. (Made by the master, so signed: an edited
    # sequence is refused by the signature, tests/test_bundle_signed.py.)
    (staged["staging"] / "bundle-sequence.json").write_text(json.dumps({"last": now_us + 3600 * 10**6}))
    fine = tmp_path / "hour.tgz"
    ok("pki", "bundle", "--staging", staged["staging"], NODE_HOST, "-o", fine)
    assert _install(node, fine).rc == 0


@pytest.mark.parametrize("poison", [str(10**4000), str(10**18)])
def test_a_node_whose_record_holds_an_implausible_sequence_recovers(staged, tmp_path: Path, poison: str) -> None:
    node = _node(tmp_path / "node")
    assert _install(node, staged["bundle"]).rc == 0
    path = node.root / "state" / "bundle-record.json"
    doc = json.loads(path.read_text())
    text = json.dumps(doc)
    for entry in doc["ssl_dirs"].values():
        text = text.replace(f'"sequence": {entry["sequence"]}', f'"sequence": {poison}')
    path.write_text(text)  # as a poisoned install left it: root's own record
    later = tmp_path / "later.tgz"
    ok("pki", "bundle", "--staging", staged["staging"], NODE_HOST, "-o", later)
    result = _install(node, later)
    assert result.rc == 0, result.out[-2000:] + result.err[-2000:]
    assert len(result.out + result.err) < 3000 and "ignored" in result.out + result.err
    recorded = json.loads(path.read_text())
    assert all(e["sequence"] < 10**17 for e in recorded["ssl_dirs"].values()), recorded


def test_a_staging_area_whose_last_sequence_is_far_ahead_numbers_from_now(staged, tmp_path: Path) -> None:
    """A master whose clock was once far ahead (or whose sequence file was tampered with) does not keep
    making bundles every node refuses."""
    sequence_file = staged["staging"] / "bundle-sequence.json"
    sequence_file.write_text(json.dumps({"last": 10**18}))
    out = tmp_path / "next.tgz"
    made = run_cli("pki", "bundle", "--staging", staged["staging"], NODE_HOST, "-o", out)
    assert made.rc == 0, made.err
    assert "bundle-sequence.json" in made.out + made.err  # the reset is said
    with tarfile.open(out) as tar:
        sequence = json.loads(tar.extractfile("manifest.json").read())["sequence"]
    assert abs(sequence - time.time_ns() // 1000) < 3600 * 10**6
    assert _install(_node(tmp_path / "node"), out).rc == 0


# -- G: the webroot reached through a link --------------------------------------------------------------------

def test_root_refuses_a_webroot_reached_through_the_service_users_symlink(world: Path, ca: Issued,
                                                                          service_user) -> None:
    user = service_user
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, user)
    state, web, target = world / "state", world / "web", world / "target"
    for d in (state, web, target):
        d.mkdir(mode=0o755)
    os.chown(state, user.pw_uid, user.pw_gid)
    os.chown(web, user.pw_uid, user.pw_gid)  # the service user's /srv/web; target stands for root's /etc
    os.symlink(target, web / "root")
    os.lchown(web / "root", user.pw_uid, user.pw_gid)
    pebble = Pebble(world / "pebble").start()
    server = WebrootServer(target, pebble.http_port)
    try:
        node.desired.write_text(json.dumps({"hostname": HOST,
                                            "acme": acme_block(pebble, [HOST], {"webroot": str(web / "root")})}))
        result = _acme(node, state, "renew")
        assert list(target.iterdir()) == [], "root wrote through the service user's link"
        assert result.rc != 0 and str(web / "root") in result.out + result.err, result.out + result.err
        assert "symlink" in result.out + result.err and "Traceback" not in result.err
    finally:
        server.stop()
        pebble.stop()


def test_a_webroot_another_user_owns_through_roots_own_link_is_used(world: Path, ca: Issued, service_user) -> None:
    """The webroot may be another user's (www-data's): what matters is that no link on the way is."""
    user = service_user
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, user)
    state, www = world / "state", world / "www"
    for d in (state, www):
        d.mkdir(mode=0o755)
        os.chown(d, user.pw_uid, user.pw_gid)
    os.symlink(www, world / "www-link")  # root's
    pebble = Pebble(world / "pebble").start()
    server = WebrootServer(www, pebble.http_port)
    try:
        node.desired.write_text(json.dumps({"hostname": HOST,
                                            "acme": acme_block(pebble, [HOST], {"webroot": str(world / "www-link")})}))
        result = _acme(node, state, "renew")
        assert result.rc == 0, result.out + result.err
        assert (www / ".well-known" / "acme-challenge").stat().st_uid == user.pw_uid
        assert any("/.well-known/acme-challenge/" in r for r in server.requests), server.requests
    finally:
        server.stop()
        pebble.stop()
