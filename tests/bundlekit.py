"""Cluster PKI through the real CLI: a staging area, bundles, nodes installed from them.

One place for what the bundle tests share (test_pki, test_rotation, test_bundle_hostile).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import copy_built, isolate_env, run_cli
from pkitools import Node

HOSTS = ["master.example.com", "sec1.example.com", "sec2.example.com"]


def ok(*args) -> str:
    result = run_cli(*args)
    assert result.rc == 0, result.out + result.err
    return result.out


ROTATION_HOST = "sec1.example.com"
OLD_CA, NEW_CA = "ca.old.example.com", "ca.new.example.com"


def make_rotation(base: Path, host: str = ROTATION_HOST) -> dict[str, Path]:
    """The four bundles a node gets through a complete CA rotation (docs/pki.md), made in that order:
    pre (old CA), both (old and new CA, ssl.crt still the old CA's), reissued (ssl.crt the new CA's),
    retired (the new CA alone). The staging area is ``bundles["staging"]``."""
    staging = base / "staging"
    bundles = {step: base / f"{step}.tgz" for step in ("pre", "both", "reissued", "retired")}
    ok("pki", "init-ca", "--staging", staging, "--name", OLD_CA)
    ok("pki", "issue", "--staging", staging, host, "--sip-domain", "example.com")
    issued = time.time()
    ok("pki", "bundle", "--staging", staging, host, "-o", bundles["pre"])
    ok("pki", "rotate-ca", "--staging", staging, "--name", NEW_CA)
    ok("pki", "bundle", "--staging", staging, host, "-o", bundles["both"])
    time.sleep(max(0.0, issued + 1.1 - time.time()))  # certificates count in seconds: the renewal is later
    ok("pki", "issue", "--staging", staging, host, "--renew", "--sip-domain", "example.com")
    ok("pki", "bundle", "--staging", staging, host, "-o", bundles["reissued"])
    ok("pki", "retire-ca", "--staging", staging, OLD_CA)
    ok("pki", "bundle", "--staging", staging, host, "-o", bundles["retired"])
    return {**bundles, "staging": staging}


def service_node(world: Path, user, name: str = "node", host: str = ROTATION_HOST) -> Node:
    """An empty ssl dir the user owns (as /etc/sipxpbx/ssl), root's desired state and root's state dir."""
    base = world / name
    ssl = base / "ssl"
    ssl.mkdir(parents=True)
    os.chown(ssl, user.pw_uid, user.pw_gid)
    (base / "desired-state.json").write_text(json.dumps({"hostname": host}))
    (base / "state").mkdir(mode=0o700)
    return Node(base, host, None, None)  # type: ignore[arg-type]  # no seeded pair: bundles bring it


def host_bundle(base: Path, host: str, ca_name: str = "ca.cluster.example.com") -> Path:
    """A staging area with one CA and ``host``'s ssl and web pairs, and that host's bundle (``base/b.tgz``)."""
    staging, bundle = base / "staging", base / "b.tgz"
    for args in (("init-ca", "--staging", staging, "--name", ca_name),
                 ("issue", "--staging", staging, host),
                 ("issue", "--staging", staging, host, "--web"),
                 ("bundle", "--staging", staging, host, "-o", bundle)):
        ok("pki", *args)
    return bundle


def install(node: Node, bundle: Path, *extra: str):
    """Root's ``pki install-bundle`` on the node, with its own state dir (where the bundle record is)."""
    return run_cli("pki", "install-bundle", bundle, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired,
                   "--state-dir", node.root / "state", *extra)


def make_cluster(tmp_path: Path) -> dict:
    """Three nodes installed from one staging area's bundles."""
    staging = tmp_path / "staging"
    ok("pki", "init-ca", "--staging", staging, "--name", "ca.master.example.com")
    for host in HOSTS:
        ok("pki", "issue", "--staging", staging, host, "--sip-domain", "example.com")
    nodes = {}
    for host in HOSTS:
        bundle = tmp_path / f"{host}.tgz"
        ok("pki", "bundle", "--staging", staging, host, "-o", bundle)
        node = tmp_path / host
        node.mkdir()
        (node / "desired.json").write_text(json.dumps({"hostname": host}))
        ok("pki", "install-bundle", bundle, "--ssl-dir", node / "ssl", "--desired-state", node / "desired.json")
        nodes[host] = node
    return {"staging": staging, "nodes": nodes, "tmp": tmp_path}


def template_cluster(base: Path) -> dict:
    """``make_cluster`` for a module-scoped fixture: its CLI runs keep their state (the bundle records,
    the stores' record) in ``base``/state, never in the machine's /var/lib/sslreconciler (a module
    fixture runs outside any test's isolated environment). Only ``copy_cluster`` of it is for tests."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_env(mp, base / "env")
        mp.setenv("SSLRECONCILER_STATE_DIR", str(base / "state"))
        (base / "cluster").mkdir()
        cluster = make_cluster(base / "cluster")
    return {**cluster, "state": base / "state"}


def copy_cluster(template: dict, tmp_path: Path) -> dict:
    """A test's own copy of a ``template_cluster`` (``conftest.copy_built``: files and state), as if the test
    had built it. A copy costs milliseconds; a cluster, ten CLI runs."""
    dest = copy_built(template["tmp"], template["state"], tmp_path / "cluster")
    return {"staging": dest / "staging", "nodes": {host: dest / host for host in template["nodes"]}, "tmp": dest}

