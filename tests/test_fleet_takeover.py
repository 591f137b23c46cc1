"""Taking over a running cluster (issue 25): the collection meets a cluster set up by hand with the CLI.

Two nodes, each a directory tree with its own settings, desired state, daemon, socket and root state dir
(as the collection uses them), set up by hand as docs/pki.md says (init-ca in staging area S1, issue,
bundle, install-bundle). Then the collection's rollout.yml with ``sslreconciler_staging`` pointing at
another, empty staging area S2: the pre-flight stops it before anything is written anywhere (S2 and every
node file unchanged), naming the node, the CA and the two ways on. Then the documented takeover paths,
with mutual TLS between every pair of nodes (Java, and ``openssl verify``) checked after every step:
takeover.yml without the running CA's key (a new CA in S2, the running one carried trust-only: trust both
with the host pairs untouched, re-issue, retire), then, the cluster now under that new CA, takeover.yml with
its key into a third staging area S3 (the cluster continues under it) and rotate.yml to another CA.

On main's code the refusal step fails: rollout.yml makes a CA, a host key and a certificate in S2 before
the master's install-bundle refuses the bundle.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from ansiblekit import BIN, ansible_env, link_collection, step, timed_play
from daemonkit import http_get
from javakit import assert_every_pair_talks

from conftest import openssl, run_cli

MASTER = "master.example.com"
SECONDARY = "sec1.example.com"
NODES = [MASTER, SECONDARY]
CA = "ca.master.example.com"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the collection runs as root")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sockets = Path(tempfile.mkdtemp(prefix="srt-", dir="/tmp"))  # AF_UNIX paths stay short
        self.s1, self.s2 = root / "S1", root / "S2"
        self.inventory = root / "inventory.json"
        self.env = ansible_env(root)
        link_collection(root)
        self.plays: list[tuple[str, float]] = []

    def node_dir(self, host: str) -> Path:
        return self.root / "nodes" / host

    def ssl(self, host: str) -> Path:
        return self.node_dir(host) / "ssl"

    def config(self, host: str) -> Path:
        return self.node_dir(host) / "etc" / "sslreconciler.toml"

    def socket(self, host: str) -> Path:
        return self.sockets / f"{host.split('.')[0]}.sock"

    def host_vars(self, host: str) -> dict[str, Any]:
        d = self.node_dir(host)
        return {
            "sslreconciler_ssl_dir": str(d / "ssl"),
            "sslreconciler_state_dir": str(d / "state"),
            "sslreconciler_root_state_dir": str(d / "root-state"),
            "sslreconciler_config": str(self.config(host)),
            "sslreconciler_desired_state_file": str(d / "etc" / "desired-state.json"),
            "sslreconciler_socket": str(self.socket(host)),
            "sslreconciler_sans": ["DNS:localhost", "IP:127.0.0.1"],
        }

    def write_inventory(self, staging: Path) -> None:
        inventory = {"all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "sslreconciler_install_method": "none",
                "sslreconciler_bin": str(BIN / "sslreconciler"),
                "sslreconciler_service_manager": "background",
                "sslreconciler_staging": str(staging),
                "sslreconciler_ca_name": CA,
                "sslreconciler_bundle_dir": str(self.root / "controller-bundles"),
                "sslreconciler_health_timeout": 240,
                "sslreconciler_health_delay": 1,
                "sslreconciler_settings": {"log_format": "json"},
            },
            "children": {
                "sslreconciler_master": {"hosts": {MASTER: {}}},
                "sslreconciler_nodes": {"hosts": {h: self.host_vars(h) for h in NODES}},
            },
        }}
        self.inventory.write_text(json.dumps(inventory, indent=2))

    def play(self, name: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return timed_play(self.inventory, self.env, self.plays, name, *extra, check=check)

    def health(self, host: str) -> dict[str, Any]:
        return json.loads(http_get(self.socket(host))[1])

    def stop(self) -> None:
        for pidfile in self.root.glob("nodes/*/state/daemon.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        shutil.rmtree(self.sockets, ignore_errors=True)


def snapshot(*dirs: Path) -> dict[str, str]:
    """Every file under ``dirs`` (path -> SHA-256 of its bytes, or the link's target): to see nothing changed."""
    seen: dict[str, str] = {}
    for top in dirs:
        if not top.exists():
            continue
        for path in sorted(top.rglob("*")):
            if path.is_symlink():
                seen[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_dir():
                seen[str(path)] = "dir"
    return seen


def fingerprint(pem_file: Path) -> str:
    """The SHA-256 of the certificate's DER, as openssl says it (lower case, no colons)."""
    out = openssl("x509", "-in", pem_file, "-noout", "-fingerprint", "-sha256").stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def assert_cluster_talks(cluster: Cluster, java_classes: Path) -> None:
    """Every pair: openssl verify of each node's cert with the other's authorities/; Java mutual TLS."""
    for a in NODES:
        for b in NODES:
            if a != b:
                openssl("verify", "-CApath", cluster.ssl(b) / "authorities", cluster.ssl(a) / "ssl.crt")
    assert_every_pair_talks(java_classes, {host: cluster.ssl(host) for host in NODES})


def set_up_by_hand(cluster: Cluster) -> None:
    """docs/pki.md's flow, by hand with the CLI, as root, into the nodes the install role prepared."""
    s1 = cluster.s1
    for argv in (["init-ca", "--staging", s1, "--name", CA],):
        result = run_cli("pki", *argv)
        assert result.rc == 0, result.err
    for host in NODES:
        for argv in (["issue", "--staging", s1, host, "--san", "DNS:localhost", "--san", "IP:127.0.0.1"],
                     ["bundle", "--staging", s1, host, "-o", cluster.root / f"{host}.tgz"]):
            result = run_cli("pki", *argv)
            assert result.rc == 0, result.err
        result = run_cli("pki", "install-bundle", "--config", cluster.config(host),
                         "--state-dir", cluster.node_dir(host) / "root-state", cluster.root / f"{host}.tgz")
        assert result.rc == 0, result.err
        (cluster.root / f"{host}.tgz").unlink()



@pytest.mark.slow
def test_rollout_refuses_a_running_cluster_then_takeover_keeps_every_handshake(
        tmp_path: Path, java_classes: Path) -> None:
    timings: dict[str, float] = {}
    cluster = Cluster(tmp_path)
    try:
        with step("install, then the cluster by hand", timings):
            cluster.write_inventory(cluster.s2)
            cluster.play("install.yml")
            set_up_by_hand(cluster)
            assert_cluster_talks(cluster, java_classes)
        with step("rollout with an empty staging area is refused before any write", timings):
            rollout_is_refused(cluster, java_classes)
        with step("takeover without the CA key: trust both, re-issue, retire", timings):
            takeover_trust_only(cluster, java_classes)
        with step("takeover with the CA key, then a rotation", timings):
            takeover_with_key_then_rotate(cluster, java_classes)
    finally:
        cluster.stop()
        print("takeover steps:", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
        print("playbooks:", ", ".join(f"{play} {seconds:.1f} s" for play, seconds in cluster.plays))


def rollout_is_refused(cluster: Cluster, java_classes: Path) -> None:
    before = snapshot(*(cluster.node_dir(h) for h in NODES), cluster.root / "controller-bundles")
    running = fingerprint(cluster.s1 / f"{CA}.crt")
    proc = cluster.play("rollout.yml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-6000:]
    after = snapshot(*(cluster.node_dir(h) for h in NODES), cluster.root / "controller-bundles")
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert not cluster.s2.exists(), (sorted(p.name for p in cluster.s2.rglob("*")), sorted(changed), out[-5000:])
    # The daemon's own run state moves on (its report, its log); the node's TLS files and root's record do not.
    assert not {k for k in changed if "/state/" not in k}, sorted(changed)
    assert f"CN={CA}" in out and running in out, out[-6000:]
    assert "sslreconciler_staging" in out and "takeover.yml" in out, out[-6000:]
    assert MASTER in out
    assert_cluster_talks(cluster, java_classes)


NEW = "ca2.master.example.com"
NEWER = "ca3.master.example.com"


def authorities(cluster: Cluster, host: str) -> list[str]:
    return sorted(p.name for p in (cluster.ssl(host) / "authorities").glob("*.crt"))


def issuer(cluster: Cluster, host: str) -> str:
    return openssl("x509", "-in", cluster.ssl(host) / "ssl.crt", "-noout", "-issuer").stdout.strip()


def wait_for_trust(cluster: Cluster, names: list[str]) -> None:
    from daemonkit import wait_until

    for host in NODES:
        wait_until(lambda h=host: sorted(cluster.health(h)["trust"]["authorities"]) == sorted(names), timeout=120,
                   what=f"{host} to trust {names}")


def takeover_trust_only(cluster: Cluster, java_classes: Path) -> None:
    """The running CA's key is gone: a new CA in S2, the running one carried trust-only, three steps."""
    extra = ["-e", json.dumps({"sslreconciler_takeover_ca_cert": str(cluster.s1 / f"{CA}.crt"),
                               "sslreconciler_new_ca_name": NEW})]
    host_certs = {h: (cluster.ssl(h) / "ssl.crt").read_bytes() for h in NODES}
    cluster.play("takeover.yml", "--tags", "takeover_import,takeover_trust", *extra)
    for host in NODES:
        assert authorities(cluster, host) == sorted([f"{NEW}.crt", f"{CA}.crt"])
        assert (cluster.ssl(host) / "ssl.crt").read_bytes() == host_certs[host]  # host pairs untouched
    wait_for_trust(cluster, [CA, NEW])
    assert_cluster_talks(cluster, java_classes)

    cluster.play("takeover.yml", "--tags", "takeover_reissue", *extra)
    for host in NODES:
        assert issuer(cluster, host) == f"issuer=CN = {NEW}"
        assert authorities(cluster, host) == sorted([f"{NEW}.crt", f"{CA}.crt"])
    assert_cluster_talks(cluster, java_classes)

    cluster.play("takeover.yml", "--tags", "takeover_retire,takeover_remove", *extra)
    for host in NODES:
        assert authorities(cluster, host) == [f"{NEW}.crt"]
        assert issuer(cluster, host) == f"issuer=CN = {NEW}"
    wait_for_trust(cluster, [NEW])
    assert_cluster_talks(cluster, java_classes)
    # The old CA is gone from every node: a certificate it signed no longer verifies there.
    old_leaf = cluster.s1 / f"{MASTER}.crt"
    for host in NODES:
        bad = openssl("verify", "-CApath", cluster.ssl(host) / "authorities", old_leaf, check=False)
        assert bad.returncode != 0


def takeover_with_key_then_rotate(cluster: Cluster, java_classes: Path) -> None:
    """The running CA's key at hand: imported into S3, the cluster continues under it; then rotate.yml."""
    s3 = cluster.root / "S3"
    cluster.write_inventory(s3)
    refused = cluster.play("rollout.yml", check=False)
    assert refused.returncode != 0 and NEW in refused.stdout and not s3.exists()
    cluster.play("takeover.yml", "-e", json.dumps({
        "sslreconciler_takeover_ca_cert": str(cluster.s2 / f"{NEW}.crt"),
        "sslreconciler_takeover_ca_key": str(cluster.s2 / f"{NEW}.key")}))
    assert (s3 / f"{NEW}.key").stat().st_mode & 0o777 == 0o600
    for host in NODES:
        assert issuer(cluster, host) == f"issuer=CN = {NEW}"
        assert authorities(cluster, host) == [f"{NEW}.crt"]
        assert (cluster.ssl(host) / "ssl.crt").read_bytes() == (s3 / f"{host}.crt").read_bytes()  # S3's now
    assert_cluster_talks(cluster, java_classes)
    cluster.play("rollout.yml")  # the pre-flight passes: S3 holds the CA every node depends on
    new = ["-e", f"sslreconciler_new_ca_name={NEWER}"]
    cluster.play("rotate.yml", "--tags", "rotate_begin,rotate_trust", *new)
    wait_for_trust(cluster, [NEW, NEWER])
    assert_cluster_talks(cluster, java_classes)
    cluster.play("rotate.yml", "--tags", "rotate_reissue", *new)
    for host in NODES:
        assert issuer(cluster, host) == f"issuer=CN = {NEWER}"
    assert_cluster_talks(cluster, java_classes)
    cluster.play("rotate.yml", "--tags", "rotate_retire,rotate_remove", *new)
    for host in NODES:
        assert authorities(cluster, host) == [f"{NEWER}.crt"]
    wait_for_trust(cluster, [NEWER])
    assert_cluster_talks(cluster, java_classes)
