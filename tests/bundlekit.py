"""Cluster PKI through the real CLI: a staging area, bundles, nodes installed from them.

One place for what the bundle tests share (test_pki, test_rotation, test_bundle_hostile).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from conftest import PASSWORD, java_bin, run_cli

HOSTS = ["master.example.com", "sec1.example.com", "sec2.example.com"]


def ok(*args) -> str:
    result = run_cli(*args)
    assert result.rc == 0, result.out + result.err
    return result.out


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


def handshake(java_classes: Path, server: Path, client: Path, port_file: Path) -> str:
    """Java mutual TLS between two nodes' stores (TlsPeer server and client); both sides' output.
    Generous deadlines: both cores may be busy with other work."""
    srv = subprocess.Popen([java_bin("system"), "-cp", str(java_classes), "TlsPeer", "server",
                            str(server / "ssl.keystore"), str(server / "authorities.jks"), PASSWORD, str(port_file)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists():
            assert srv.poll() is None and time.monotonic() < deadline, srv.communicate()
            time.sleep(0.05)
        cli = subprocess.run([java_bin("system"), "-cp", str(java_classes), "TlsPeer", "client",
                              str(client / "ssl.keystore"), str(client / "authorities.jks"), PASSWORD,
                              port_file.read_text()], capture_output=True, text=True, timeout=180)
        out, err = srv.communicate(timeout=120)
    finally:
        srv.kill()
        port_file.unlink(missing_ok=True)  # the next handshake on this pair waits for a new port
    assert cli.returncode == 0 and srv.returncode == 0, cli.stdout + cli.stderr + out + err
    return cli.stdout + out
