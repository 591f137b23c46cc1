"""The Ansible collection over SSH, as a real cluster runs it (issue 25): rollout, collect and a CA rotation
against two nodes reached through a real sshd (tests/sshkit.py) as an unprivileged login user who becomes
root with sudo, host keys checked, every node its own inventory host with its own paths.

One flow, its steps reusing the state the step before left. After every play: every pair of nodes completes
Java mutual TLS with its stores, and each bundle crossed the wire through the controller, 0600 on the master,
the controller and the node while the node installed it (seen by a wrapper around the node's
``sslreconciler`` at that moment: all three copies are on this one machine), and was removed from all three
afterwards, also when the install fails (a failure made on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from ansiblekit import BIN, ansible_env, link_collection, step, timed_play
from daemonkit import http_get
from javakit import assert_every_pair_talks
from sshkit import SshLogin, ssh_login
from userkit import user_python

from conftest import openssl, run_cli

MASTER, NODE2 = "node1.example.com", "node2.example.com"
NODES = [MASTER, NODE2]
CA, NEW_CA = "ca.node1.example.com", "ca2.node1.example.com"

WRAPPER = """#!/bin/sh
# The node's sslreconciler, seen from inside: while install-bundle runs, the mode, owner and path of the
# node's copy of the bundle, its directory, the controller's copy and the master's (one machine here).
if [ "$1 $2" = "pki install-bundle" ]; then
  for last; do :; done
  stat -c '%a %U %n' "$last" "$(dirname "$last")" {controller} {outgoing} >> {log} 2>&1
  if [ -e {fail} ]; then echo "install refused on purpose by the test" >&2; exit 1; fi
fi
exec {real} "$@"
"""


class SshFleet:
    def __init__(self, root: Path, login: SshLogin) -> None:
        self.root, self.login = root, login
        self.sockets = Path(tempfile.mkdtemp(prefix="srs-", dir="/tmp"))  # AF_UNIX paths stay short
        self.inventory = root / "inventory.json"
        self.report_json = root / "report.json"
        self.staging = root / "staging"
        self.outgoing = self.staging / "outgoing"
        self.controller = root / "controller-bundles"
        self.seen = root / "seen-by-install.log"
        self.fail_flag = root / "fail-install"
        self.env = ansible_env(root)
        login.ansible_env(self.env)
        self.plays: list[tuple[str, float]] = []
        self.python = user_python()  # an interpreter the login user can run, wherever this clone is
        wrapper = root / "node2-sslreconciler"
        wrapper.write_text(WRAPPER.format(
            controller=self.controller / f"{NODE2}.bundle.tgz", outgoing=self.outgoing / f"{NODE2}.bundle.tgz",
            log=self.seen, fail=self.fail_flag, real=BIN / "sslreconciler"))
        wrapper.chmod(0o755)
        self.bins = {MASTER: str(BIN / "sslreconciler"), NODE2: str(wrapper)}

    def ssl(self, host: str) -> Path:
        return self.root / "nodes" / host / "ssl"

    def socket(self, host: str) -> Path:
        return self.sockets / f"{host.split('.')[0]}.sock"

    def host_vars(self, host: str) -> dict[str, Any]:
        d = self.root / "nodes" / host
        return {
            **self.login.host_vars(self.python),
            "sslreconciler_bin": self.bins[host],
            "sslreconciler_ssl_dir": str(d / "ssl"),
            "sslreconciler_state_dir": str(d / "state"),
            "sslreconciler_root_state_dir": str(d / "root-state"),
            "sslreconciler_config": str(d / "etc" / "sslreconciler.toml"),
            "sslreconciler_desired_state_file": str(d / "etc" / "desired-state.json"),
            "sslreconciler_socket": str(self.socket(host)),
            "sslreconciler_sans": ["DNS:localhost", "IP:127.0.0.1"],
            "sslreconciler_sip_domain": "example.com",
        }

    def write_inventory(self) -> None:
        self.inventory.write_text(json.dumps({"all": {
            "vars": {
                "sslreconciler_install_method": "none",  # the package is there: the clone's venv, run by root
                "sslreconciler_service_manager": "background",
                "sslreconciler_staging": str(self.staging),
                "sslreconciler_ca_name": CA,
                "sslreconciler_bundle_dir": str(self.controller),
                "sslreconciler_health_timeout": 240,
                "sslreconciler_health_delay": 1,
                "sslreconciler_settings": {"log_format": "json"},
                "sslreconciler_report_json": str(self.report_json),
            },
            "children": {
                "sslreconciler_master": {"hosts": {MASTER: {}}},
                "sslreconciler_nodes": {"hosts": {h: self.host_vars(h) for h in NODES}},
            },
        }}, indent=2))

    def play(self, name: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return timed_play(self.inventory, self.env, self.plays, name, *extra, check=check)

    def health(self, host: str) -> dict[str, Any]:
        return json.loads(http_get(self.socket(host))[1])

    def stop(self) -> None:
        for pidfile in self.root.glob("nodes/*/state/daemon.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        shutil.rmtree(self.sockets, ignore_errors=True)


def seen_installs(fleet: SshFleet) -> list[list[str]]:
    """Per install-bundle run on node2: the four ``mode owner path`` lines the wrapper wrote."""
    lines = fleet.seen.read_text().splitlines() if fleet.seen.exists() else []
    return [lines[i:i + 4] for i in range(0, len(lines), 4)]


def assert_bundles_crossed_privately_and_are_gone(fleet: SshFleet, installs_before: int) -> list[list[str]]:
    installs = seen_installs(fleet)[installs_before:]
    assert installs, "node2 installed no bundle in this play"
    for node_copy, node_dir, controller_copy, master_copy in installs:
        assert node_copy.startswith("600 root ") and node_copy.endswith("/incoming.bundle.tgz"), node_copy
        assert node_dir.startswith("700 root "), node_dir
        assert controller_copy == f"600 root {fleet.controller / f'{NODE2}.bundle.tgz'}", controller_copy
        assert master_copy == f"600 root {fleet.outgoing / f'{NODE2}.bundle.tgz'}", master_copy
        assert not Path(node_dir.split(" ", 2)[2]).exists(), f"the node's copy is left: {node_dir}"
    assert list(fleet.controller.iterdir()) == []
    assert list(fleet.outgoing.iterdir()) == []
    # Ansible's remote tmp: the login user's, private, and nothing of a bundle left in it.
    home = Path(fleet.login.user.pw_dir)
    assert home.stat().st_mode & 0o777 == 0o700
    tmp = home / ".ansible" / "tmp"
    assert tmp.stat().st_mode & 0o777 == 0o700
    assert [p for p in tmp.rglob("*") if "bundle" in p.name] == []
    return installs


def assert_cluster_agrees(fleet: SshFleet, java_classes: Path) -> None:
    for a in NODES:
        for b in NODES:
            if a != b:
                openssl("verify", "-CApath", fleet.ssl(b) / "authorities", fleet.ssl(a) / "ssl.crt")
    assert_every_pair_talks(java_classes, {host: fleet.ssl(host) for host in NODES}, what="over SSH")



@pytest.mark.slow
def test_a_fleet_over_ssh_through_rollout_collect_a_failed_install_and_ca_rotation(
        tmp_path: Path, java_classes: Path) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    with ssh_login(tmp_path / "ssh-client") as login:
        fleet = SshFleet(tmp_path, login)
        try:
            with step("install and roll out two nodes over SSH", timings):
                link_collection(tmp_path)
                fleet.write_inventory()
                fleet.play("install.yml")
                fleet.play("rollout.yml")
                for host in NODES:
                    doc = fleet.health(host)
                    assert doc["status"] == "ok", doc["findings"]
                    assert doc["trust"]["authorities"] == [CA]
                    assert doc["artifacts"]["ssl.keystore"]["certificate"]["subject"] == f"CN={host}"
                assert_bundles_crossed_privately_and_are_gone(fleet, 0)
                assert_cluster_agrees(fleet, java_classes)
                # Over SSH indeed, and through few connections: ControlPersist keeps one open between tasks.
                assert list(login.control_dir.iterdir()), "no ControlPersist master"
                accepted = login.log.read_text().count(f"Accepted publickey for {login.user.pw_name} from 127.0.0.1")
                assert accepted >= 2, login.log.read_text()  # sshkit's own check, then Ansible's
            with step("collect over SSH", timings):
                fleet.play("collect.yml")
                rows = json.loads(fleet.report_json.read_text())
                assert [r["node"] for r in rows] == NODES
                for row in rows:
                    doc = fleet.health(row["node"])
                    assert (row["status"], row["fingerprint"]) == (doc["status"], doc["trust"]["fingerprint"])
                assert len({r["fingerprint"] for r in rows}) == 1
            with step("a failed install leaves no bundle anywhere", timings):
                before = len(seen_installs(fleet))
                ssl_before = {p.name: p.read_bytes() for p in fleet.ssl(NODE2).iterdir() if p.is_file()}
                fleet.fail_flag.touch()
                try:
                    proc = fleet.play("rollout.yml", check=False)
                finally:
                    fleet.fail_flag.unlink()
                assert proc.returncode != 0 and "install refused on purpose by the test" in proc.stdout, proc.stdout
                assert_bundles_crossed_privately_and_are_gone(fleet, before)
                assert ssl_before == {p.name: p.read_bytes() for p in fleet.ssl(NODE2).iterdir() if p.is_file()}
                assert_cluster_agrees(fleet, java_classes)
            with step("CA rotation over SSH", timings):
                before = len(seen_installs(fleet))
                fleet.play("rotate.yml", "-e", f"sslreconciler_new_ca_name={NEW_CA}")
                for host in NODES:
                    doc = fleet.health(host)
                    assert doc["status"] == "ok" and doc["trust"]["authorities"] == [NEW_CA], doc
                    assert doc["artifacts"]["ssl.keystore"]["certificate"]["issuer"] == f"CN={NEW_CA}"
                assert len(assert_bundles_crossed_privately_and_are_gone(fleet, before)) == 3  # trust, reissue, remove
                assert_cluster_agrees(fleet, java_classes)
                fleet.play("collect.yml")
                rows = json.loads(fleet.report_json.read_text())
                assert {r["status"] for r in rows} == {"ok"} and len({r["fingerprint"] for r in rows}) == 1
            with step("renewal over SSH: no churn, twice in a row", timings):
                renewal_without_churn(fleet, java_classes)
        finally:
            fleet.stop()
            print(f"fleet over SSH: {time.monotonic() - started:.1f} s;",
                  ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
            print("playbooks:", ", ".join(f"{play} {seconds:.1f} s" for play, seconds in fleet.plays))
            print("ssh connections accepted:", login.log.read_text().count("Accepted publickey"))
    # Everything sshkit made is gone: the login user, its sudo rule, the server's directory.
    assert subprocess.run(["id", login.user.pw_name], capture_output=True).returncode != 0
    assert not Path(f"/etc/sudoers.d/srssh-{login.user.pw_name}").exists()
    assert not login.control_dir.exists() and not Path(login.user.pw_dir).exists()


def renewal_without_churn(fleet: SshFleet, java_classes: Path) -> None:
    staged = fleet.staging / f"{NODE2}.crt"
    result = run_cli("pki", "issue", "--staging", fleet.staging, NODE2, "--renew", "--days", "10",
                     "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--sip-domain", "example.com")
    assert result.rc == 0, result.err
    short = staged.read_bytes()
    running = (fleet.ssl(NODE2) / "ssl.crt").read_bytes()
    # A lifetime not longer than the window would be due again at once: refused, nothing written or rolled out.
    proc = fleet.play("renew.yml", "-e", "sslreconciler_renew_within=30", "-e", "sslreconciler_cert_days=10",
                      check=False)
    assert proc.returncode != 0 and "--days 10: not longer than the --within 30 window" in proc.stdout, proc.stdout
    assert staged.read_bytes() == short and (fleet.ssl(NODE2) / "ssl.crt").read_bytes() == running
    # The default lifetime: renewed and rolled out; the second run renews nothing and rolls out nothing.
    before = len(seen_installs(fleet))
    out = fleet.play("renew.yml", "-e", "sslreconciler_renew_within=30").stdout
    assert f"renewed: {NODE2}" in out
    assert len(assert_bundles_crossed_privately_and_are_gone(fleet, before)) == 1
    new = fleet.ssl(NODE2) / "ssl.crt"
    assert openssl("x509", "-in", new, "-noout", "-checkend", str(1000 * 86400), check=False).returncode == 0
    assert fleet.health(NODE2)["status"] == "ok"
    assert_cluster_agrees(fleet, java_classes)
    renewed = {h: (fleet.ssl(h) / "ssl.crt").read_bytes() for h in NODES}
    out = fleet.play("renew.yml", "-e", "sslreconciler_renew_within=30").stdout
    assert "renewed: nothing was due" in out
    assert len(seen_installs(fleet)) == before + 1  # no install on the second run
    assert renewed == {h: (fleet.ssl(h) / "ssl.crt").read_bytes() for h in NODES}
