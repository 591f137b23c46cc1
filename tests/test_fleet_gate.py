"""Health gates that say why, and drift against the staging area, on a real two-node fleet (issue 25,
problems 2 and 3).

One flow, its steps reusing the fleet (as tests/test_fleet.py does): a rollout where one node's certificate
is inside the warning window (the gate's default accepts ``warning``; before, it waited out the timeout);
a degraded node failing at once with its finding, one line, never the JSON document (before: the whole
timeout, then the document); collect with one node down and an extra CA on the other (two nodes: before,
the majority rule blamed nobody, or the right node, and the down node was a red ``fatal``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ansiblekit import step
from daemonkit import wait_until
from test_fleet import MASTER, Fleet, install_and_roll_out_three_nodes

from pkitools import make_ca, make_host

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the playbooks install as root"),
]

SECOND = "node2.example.com"
TIMEOUT = 240  # the fleet's sslreconciler_health_timeout


class TwoNodes(Fleet):
    def host_vars(self, host: str) -> dict[str, Any]:
        more = {"sslreconciler_cert_days": 20} if host == SECOND else {}  # inside expiry_warning_days (30)
        return {**super().host_vars(host), **more}


def test_gates_say_why_and_drift_is_judged_against_the_staging_area(tmp_path: Path) -> None:
    timings: dict[str, float] = {}
    fleet = TwoNodes(tmp_path)
    try:
        with step("a node at warning is rolled out", timings):
            install_and_roll_out_three_nodes(fleet, nodes=[MASTER, SECOND])
            doc = fleet.health(SECOND)
            assert doc["status"] == "warning", doc["findings"]
            assert any(f["code"] == "expiring" for f in doc["findings"])
            assert fleet.health(MASTER)["status"] == "ok"
        with step("a degraded node fails at once, its finding in the message", timings):
            a_degraded_node_fails_at_once(fleet)
        with step("collect: one node down, an extra CA on the other", timings):
            one_node_down_and_an_extra_ca_on_the_other(fleet)
    finally:
        fleet.stop()
        print("steps:", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
        print("playbooks:", ", ".join(f"{play} {seconds:.1f} s" for play, seconds in fleet.plays))


def a_degraded_node_fails_at_once(fleet: Fleet) -> None:
    # A certificate no trusted CA signed, dropped into the master's authorities/ the moment the reissue's
    # install has written its stores: an error finding (DEGRADED) once the daemon reconciles, while the node
    # shows the new certificate and trusted set (the stray is left out of the set).
    keystore = fleet.ssl(MASTER) / "ssl.keystore"
    before = keystore.read_bytes()
    stray = fleet.ssl(MASTER) / "authorities" / "stray.crt"
    leaf = make_host(make_ca("ca.elsewhere.example.org"), "stray.example.org")
    done = threading.Event()

    def drop() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                if keystore.read_bytes() != before:
                    stray.write_bytes(leaf.cert_pem())
                    return
            time.sleep(0.005)

    dropper = threading.Thread(target=drop, daemon=True)
    dropper.start()
    try:
        started = time.monotonic()
        proc = fleet.play("rollout.yml", "--limit", MASTER, "-e", "sslreconciler_reissue=true", check=False)
        took = time.monotonic() - started
    finally:
        done.set()
        dropper.join(10)
    print(f"degraded rollout failed after {took:.1f} s (timeout {TIMEOUT} s)")
    assert proc.returncode != 0, proc.stdout[-4000:]
    assert stray.exists(), "the reissue's install never wrote the keystore"
    assert took < TIMEOUT / 4, f"{took:.1f} s: the gate waited instead of failing at once"
    failed = proc.stdout[proc.stdout.index("FAILED!") :]
    print(failed[:1500])
    assert "stray.crt" in failed and "degraded" in failed, failed[:3000]
    assert '"artifacts"' not in failed and '"trust"' not in failed, "the JSON document, not one line per finding"
    stray.unlink()
    wait_until(lambda: fleet.health(MASTER)["status"] == "ok", timeout=120, what="the master ok again")


def one_node_down_and_an_extra_ca_on_the_other(fleet: Fleet) -> None:
    foreign = make_ca("ca.foreign.example.org")
    dropped = fleet.ssl(MASTER) / "authorities" / "foreign.crt"
    dropped.write_bytes(foreign.cert_pem())
    wait_until(
        lambda: "foreign" in fleet.health(MASTER)["trust"]["authorities"],
        timeout=120,
        what="the daemon to trust the foreign CA",
    )
    pid = int((fleet.node_dir(SECOND) / "state" / "daemon.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(
        lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(),
        timeout=60,
        what="the second node's daemon to stop",
    )

    proc = fleet.play("collect.yml")
    assert "fatal:" not in proc.stdout and "FAILED!" not in proc.stdout and "ignoring" not in proc.stdout
    rows = {r["node"]: r for r in json.loads(fleet.report_json.read_text())}
    assert {n: r["verdict"] for n, r in rows.items()} == {MASTER: "DRIFT", SECOND: "unreachable"}
    assert [(c["subject"], c["fingerprint"]) for c in rows[MASTER]["extra"]] == [
        ("CN=ca.foreign.example.org", foreign.fingerprint())
    ]
    assert rows[MASTER]["missing"] == []
    table = fleet.report_file.read_text()
    assert "2 nodes: 0 ok, 1 drifted, 1 unreachable (node2.example.com)" in table
    assert "2 nodes: 0 ok, 1 drifted, 1 unreachable" in proc.stdout

    asked = fleet.play("collect.yml", "-e", "sslreconciler_collect_fail_unreachable=true", check=False)
    assert asked.returncode != 0
    assert "1 node(s) gave no /health: node2.example.com" in asked.stdout
    dropped.unlink()
