"""The Ansible collection (ansible/) run for real against a cluster of nodes on this machine.

Each node is a directory tree with its own settings, desired state, running daemon and socket, reached with
``ansible_connection=local``. One test walks a fleet's life in order (rollout of three nodes, a fourth node,
a renewal, drift, a CA rotation): each step starts from the state the step before left, so they are steps of
one test (a failure names its step), not tests that would depend on their order. After each playbook every
pair of nodes completes Java mutual TLS with its stores and ``openssl verify`` accepts every node's
certificate with every other node's authorities.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from ansiblekit import BIN, PLAYBOOKS, ansible_env, link_collection, step, timed_play, wheelhouse
from daemonkit import http_get, wait_until
from javakit import assert_every_pair_talks

from conftest import REPO, openssl, run_cli
from pkitools import make_ca

MASTER = "node1.example.com"
FIRST_THREE = [MASTER, "node2.example.com", "node3.example.com"]
FOURTH = "node4.example.com"


class Fleet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.sockets = Path(tempfile.mkdtemp(prefix="srf-", dir="/tmp"))  # AF_UNIX paths stay short
        self.nodes: list[str] = []
        self.inventory = root / "inventory.json"
        self.report_json = root / "report.json"
        self.report_file = root / "report.txt"
        self.env = ansible_env(root)
        self.wheel = Path()
        self.plays: list[tuple[str, float]] = []  # (playbook and options, seconds): where the time goes

    def node_dir(self, host: str) -> Path:
        return self.root / "nodes" / host

    def ssl(self, host: str) -> Path:
        return self.node_dir(host) / "ssl"

    def socket(self, host: str) -> Path:
        return self.sockets / f"{host.split('.')[0]}.sock"

    def host_vars(self, host: str) -> dict[str, Any]:
        d = self.node_dir(host)
        return {
            "sslreconciler_ssl_dir": str(d / "ssl"),
            "sslreconciler_state_dir": str(d / "state"),
            "sslreconciler_root_state_dir": str(d / "root-state"),  # never the machine's /var/lib/...
            "sslreconciler_config": str(d / "etc" / "sslreconciler.toml"),
            "sslreconciler_desired_state_file": str(d / "etc" / "desired-state.json"),
            "sslreconciler_socket": str(self.socket(host)),
            "sslreconciler_sans": ["DNS:localhost", "IP:127.0.0.1"],
            "sslreconciler_sip_domain": "example.com",
        }

    def write_inventory(self) -> None:
        inventory = {
            "all": {
                "vars": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                    "sslreconciler_install_method": "wheel",
                    "sslreconciler_wheel": str(self.wheel),
                    "sslreconciler_python": sys.executable,
                    "sslreconciler_venv": str(self.root / "venv"),
                    "sslreconciler_service_manager": "background",
                    "sslreconciler_staging": str(self.root / "staging"),
                    "sslreconciler_ca_name": "ca.node1.example.com",
                    "sslreconciler_bundle_dir": str(self.root / "controller-bundles"),
                    "sslreconciler_health_timeout": 240,
                    "sslreconciler_health_delay": 1,  # the least the role takes: /health polled every second
                    "sslreconciler_settings": {"log_format": "json"},
                    "sslreconciler_report_file": str(self.report_file),
                    "sslreconciler_report_json": str(self.report_json),
                },
                "children": {
                    "sslreconciler_master": {"hosts": {MASTER: {}}},
                    "sslreconciler_nodes": {"hosts": {h: self.host_vars(h) for h in self.nodes}},
                },
            }
        }
        self.inventory.write_text(json.dumps(inventory, indent=2))

    def play(self, name: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return timed_play(self.inventory, self.env, self.plays, name, *extra, check=check)

    def health(self, host: str) -> dict[str, Any]:
        return json.loads(http_get(self.socket(host))[1])

    def metrics(self, host: str) -> str:
        return http_get(self.socket(host), "/metrics")[1].decode()

    def status(self, host: str) -> dict[str, Any]:
        proc = run_cli("status", "--json", "--socket", self.socket(host))
        return json.loads(proc.out)

    def stop(self) -> None:
        for pidfile in self.root.glob("nodes/*/state/daemon.pid"):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
        shutil.rmtree(self.sockets, ignore_errors=True)


def assert_cluster_agrees(fleet: Fleet, java_classes: Path) -> None:
    """Every pair: Java mutual TLS with its stores; openssl verify of each node's cert with each other's CAs."""
    nodes = fleet.nodes
    for a in nodes:
        for b in nodes:
            if a != b:
                openssl("verify", "-CApath", fleet.ssl(b) / "authorities", fleet.ssl(a) / "ssl.crt")
    assert_every_pair_talks(java_classes, {host: fleet.ssl(host) for host in nodes})


def assert_report_matches(fleet: Fleet) -> list[dict[str, Any]]:
    fleet.play("collect.yml")
    rows = json.loads(fleet.report_json.read_text())
    assert [r["node"] for r in rows] == sorted(fleet.nodes)
    table = fleet.report_file.read_text()
    for row in rows:
        status = fleet.status(row["node"])
        assert row["status"] == status["status"]
        assert row["fingerprint"] == status["trust"]["fingerprint"]
        assert row["authorities"] == status["trust"]["authorities"]
        assert row["ssl_expiry"] == status["artifacts"]["ssl.keystore"]["certificate"]["not_after"]
        line = next(line for line in table.splitlines() if line.startswith(row["node"]))
        assert row["status"] in line and row["ssl_expiry"][:10] in line
    return rows


@pytest.mark.slow
def test_every_playbook_passes_syntax_check(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    link_collection(tmp_path)
    playbooks = sorted(PLAYBOOKS.glob("*.yml"))
    assert {p.name for p in playbooks} >= {"install.yml", "rollout.yml", "renew.yml", "rotate.yml", "collect.yml"}
    for playbook in playbooks:
        proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(playbook)],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, f"{playbook.name}: {proc.stdout}{proc.stderr}"


def _filters() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fleet_filters", REPO / "ansible" / "plugins" / "filter" / "fleet.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fleet_report_judges_every_node_against_the_staging_area_not_the_majority() -> None:
    """The old majority unit test, with its new meaning (tests/test_fleet_drift.py has the whole table)."""
    f = _filters()
    ca, foreign = make_ca("ca.node1.example.com"), make_ca("ca.foreign.example.org")
    expected = f.fleet_expected({"ca.node1.example.com": ca.cert_pem().decode()}, None)

    def doc(*cas: Any, status: str = "ok") -> dict[str, Any]:
        from sslreconciler.reconcile.trustset import trust_set

        return {"status": status, "trust": trust_set({c.cert.subject.rfc4514_string()[3:]: c.cert_der() for c in cas}),
                "artifacts": {"ssl.keystore": {"certificate": {"not_after": "2029-01-02T00:00:00Z"}}}}

    # Two nodes drifted alike outvoted the right one under the majority rule; "d" gave no /health.
    rows = f.fleet_report({"c": doc(ca), "a": doc(ca, foreign), "b": doc(ca, foreign, status="warning"), "d": {}},
                          expected, {})
    assert [(r["node"], r["status"], r["verdict"], r["drift"]) for r in rows] == [
        ("a", "ok", "DRIFT", True), ("b", "warning", "DRIFT", True), ("c", "ok", "ok", False),
        ("d", "unreachable", "unreachable", False)]
    assert rows[0]["ssl_expiry"] == "2029-01-02T00:00:00Z" and rows[0]["web_expiry"] == "-"
    table = f.fleet_table(rows).splitlines()
    assert table[0].split()[:3] == ["NODE", "STATUS", "TRUST"]
    assert table[3].split()[:2] == ["c", "ok"] and table[3].split()[-1] == "ok"
    assert table[4].split() == ["d", "unreachable", "-", "-", "-", "-", "unreachable"]


@pytest.mark.slow
def test_ansible_lint_passes(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    link_collection(tmp_path)
    proc = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--nocolor", "-q"], cwd=REPO / "ansible",
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_fleet_through_rollout_a_fourth_node_renewal_drift_and_ca_rotation(
        tmp_path: Path, java_classes: Path) -> None:
    timings: dict[str, float] = {}
    fleet = Fleet(tmp_path)
    try:
        with step("install and roll out three nodes", timings):
            install_and_roll_out_three_nodes(fleet)
        with step("fresh rollout of three nodes", timings):
            fresh_rollout_of_three_nodes(fleet, java_classes)
        with step("adding a fourth node", timings):
            adding_a_fourth_node(fleet, java_classes)
        with step("renewal of a host expiring within the window", timings):
            renewal_of_a_host_expiring_within_the_window(fleet, java_classes)
        with step("drift shows in collect and metrics", timings):
            drift_shows_in_collect_and_metrics(fleet, java_classes)
        with step("full CA rotation", timings):
            full_ca_rotation(fleet, java_classes)
    finally:
        fleet.stop()
        print("fleet steps:", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
        print("playbooks:", ", ".join(f"{play} {seconds:.1f} s" for play, seconds in fleet.plays))


def install_and_roll_out_three_nodes(fleet: Fleet, nodes: list[str] | None = None) -> None:
    link_collection(fleet.root)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(fleet.root / "wheel"), str(REPO)], check=True, timeout=600, capture_output=True)
    fleet.wheel = next((fleet.root / "wheel").glob("sslreconciler-*.whl"))
    # The nodes' venv gets the dependencies from wheels of what .venv holds: no index, no network.
    fleet.env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse(fleet.root / "wheelhouse")))
    fleet.nodes = list(nodes or FIRST_THREE)
    fleet.write_inventory()
    fleet.play("install.yml", "--forks", "1")  # one venv shared by the nodes of this machine: one pip at a time
    fleet.play("rollout.yml")


def fresh_rollout_of_three_nodes(fleet: Fleet, java_classes: Path) -> None:
    fingerprints = set()
    for host in fleet.nodes:
        doc = fleet.health(host)
        assert doc["status"] == "ok", doc["findings"]
        assert doc["trust"]["authorities"] == ["ca.node1.example.com"]
        assert doc["artifacts"]["ssl.keystore"]["certificate"]["subject"] == f"CN={host}"
        fingerprints.add(doc["trust"]["fingerprint"])
        san = openssl("x509", "-in", fleet.ssl(host) / "ssl.crt", "-noout", "-ext", "subjectAltName").stdout
        assert f"DNS:{host}" in san and "IP Address:127.0.0.1" in san and "URI:sip:example.com" in san
    assert len(fingerprints) == 1
    # No bundle (each holds a private key) is left behind on the controller, the master or a node.
    assert list((fleet.root / "controller-bundles").iterdir()) == []
    assert list((fleet.root / "staging" / "outgoing").iterdir()) == []
    assert not list(fleet.root.glob("nodes/*/state/*.bundle.tgz"))
    assert_cluster_agrees(fleet, java_classes)
    rows = assert_report_matches(fleet)
    assert not any(r["drift"] for r in rows)


def adding_a_fourth_node(fleet: Fleet, java_classes: Path) -> None:
    # The rollout that adds the fourth node is also the first three's second run: nothing is re-issued for
    # them, none of their certificates changes (on the master or on the node).
    staged = {h: (fleet.root / "staging" / f"{h}.crt").read_bytes() for h in fleet.nodes}
    before = {h: (fleet.ssl(h) / "ssl.crt").read_bytes() for h in fleet.nodes}
    fleet.nodes.append(FOURTH)
    fleet.write_inventory()
    fleet.play("install.yml", "--limit", FOURTH)
    out = fleet.play("rollout.yml").stdout
    assert "failed=0" in out
    assert fleet.health(FOURTH)["status"] == "ok"
    assert staged == {h: (fleet.root / "staging" / f"{h}.crt").read_bytes() for h in staged}  # others kept
    assert before == {h: (fleet.ssl(h) / "ssl.crt").read_bytes() for h in before}
    assert_cluster_agrees(fleet, java_classes)
    assert_report_matches(fleet)


def renewal_of_a_host_expiring_within_the_window(fleet: Fleet, java_classes: Path) -> None:
    short = "node3.example.com"
    staging = fleet.root / "staging"
    # The host's certificate now expires in 10 days, and that is what the node runs.
    result = run_cli("pki", "issue", "--staging", staging, short, "--renew", "--days", "10",
                     "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--sip-domain", "example.com")
    assert result.rc == 0, result.err
    # A certificate that near its end makes the node "warning" (expiry_warning_days), which this step accepts.
    fleet.play("rollout.yml", "--limit", f"{MASTER},{short}", "-e", '{"sslreconciler_health_ok": ["ok", "warning"]}')
    assert fleet.health(short)["status"] == "warning"
    old_serial = fleet.health(short)["artifacts"]["ssl.keystore"]["certificate"]["serial"]
    others = [h for h in fleet.nodes if h != short]
    staged = {h: (staging / f"{h}.crt").read_bytes() for h in others}
    on_node = {h: {p.name: p.read_bytes() for p in fleet.ssl(h).iterdir() if p.is_file()} for h in others}

    out = fleet.play("renew.yml", "-e", "sslreconciler_renew_within=30").stdout
    assert f"renewed: {short}" in out

    doc = fleet.health(short)
    cert = doc["artifacts"]["ssl.keystore"]["certificate"]
    assert cert["serial"] != old_serial and cert["not_after"][:4] >= str(time.gmtime().tm_year + 2)
    assert staged == {h: (staging / f"{h}.crt").read_bytes() for h in others}
    assert on_node == {h: {p.name: p.read_bytes() for p in fleet.ssl(h).iterdir() if p.is_file()} for h in others}
    assert_cluster_agrees(fleet, java_classes)
    assert_report_matches(fleet)
    # Nothing is due any more: a second run renews nothing and rolls out nothing.
    out = fleet.play("renew.yml", "-e", "sslreconciler_renew_within=30").stdout
    assert "renewed: nothing was due" in out


def drift_shows_in_collect_and_metrics(fleet: Fleet, java_classes: Path) -> None:
    drifted = "node2.example.com"
    common = fleet.health(MASTER)["trust"]["fingerprint"]
    foreign = make_ca("ca.foreign.example.org")
    dropped = fleet.ssl(drifted) / "authorities" / "foreign.crt"
    dropped.write_bytes(foreign.cert_pem())
    try:
        doc = wait_until(lambda: (d := fleet.health(drifted))["trust"]["fingerprint"] != common and d,
                         timeout=120, what="the daemon to see the foreign CA")
        assert sorted(doc["trust"]["authorities"]) == ["ca.node1.example.com", "foreign"]
        rows = assert_report_matches(fleet)
        assert {r["node"]: r["verdict"] for r in rows} == {h: "DRIFT" if h == drifted else "ok" for h in fleet.nodes}
        assert {r["node"]: r["drift"] for r in rows} == {h: h == drifted for h in fleet.nodes}
        row = next(r for r in rows if r["node"] == drifted)
        assert [c["subject"] for c in row["extra"]] == ["CN=ca.foreign.example.org"] and row["missing"] == []
        assert "DRIFT" in next(line for line in fleet.report_file.read_text().splitlines() if line.startswith(drifted))
        for host in fleet.nodes:
            want = doc["trust"]["fingerprint"] if host == drifted else common
            assert f'sslreconciler_trust_set_info{{fingerprint="{want}"}} 1' in fleet.metrics(host)
    finally:
        dropped.unlink()
    wait_until(lambda: fleet.health(drifted)["trust"]["fingerprint"] == common, timeout=120, what="drift healed")
    rows = assert_report_matches(fleet)
    assert not any(r["drift"] for r in rows)


def full_ca_rotation(fleet: Fleet, java_classes: Path) -> None:
    new_ca, old_ca = "ca2.node1.example.com", "ca.node1.example.com"
    new = ["-e", f"sslreconciler_new_ca_name={new_ca}"]
    # Step by step (the playbook's tags), with the whole cluster checked after each.
    fleet.play("rotate.yml", "--tags", "rotate_begin", *new)
    assert_cluster_agrees(fleet, java_classes)
    fleet.play("rotate.yml", "--tags", "rotate_trust", *new)
    for host in fleet.nodes:
        assert sorted(fleet.health(host)["trust"]["authorities"]) == sorted([new_ca, old_ca])
    assert_cluster_agrees(fleet, java_classes)
    fleet.play("rotate.yml", "--tags", "rotate_reissue", *new)
    for host in fleet.nodes:
        assert fleet.health(host)["artifacts"]["ssl.keystore"]["certificate"]["issuer"] == f"CN={new_ca}"
    assert_cluster_agrees(fleet, java_classes)
    fleet.play("rotate.yml", "--tags", "rotate_retire,rotate_remove", *new)
    for host in fleet.nodes:
        doc = fleet.health(host)
        assert doc["status"] == "ok" and doc["trust"]["authorities"] == [new_ca]
    assert_cluster_agrees(fleet, java_classes)
    assert_report_matches(fleet)
