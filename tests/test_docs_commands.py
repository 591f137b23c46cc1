"""Every command docs/operations.md and docs/pki.md show, run in order on nodes that are directories here.

A block's first line ``# on HOST`` says which node it runs on. Paths are mapped: ``/etc/sipxpbx/ssl`` to
that node's ssl dir, ``/root/`` to that node's home (``scp`` copies between homes), ``$S`` and the
staging path to one staging area, ``$(hostname -f)`` to the node's name. ``systemctl enable --now
sslreconciler`` starts the daemon on that node; ``dnf``, ``chown`` and other ``systemctl`` lines are
skipped (no systemd as PID 1 here, no RPM install). Anything else must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from daemonkit import RunningDaemon

from conftest import REPO, keytool_list, openssl, run_cli
from pkitools import Node, make_ca, write

SKIPPED = ("dnf ", "chown ", "systemctl ")
STAGING = "/var/lib/sslreconciler-pki"


def doc_steps(doc: Path) -> list[tuple[str, str]]:
    """(node, command line) for every command in the doc's ``sh`` blocks, in order."""
    steps: list[tuple[str, str]] = []
    in_block, node, pending = False, "master.example.com", ""
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```sh" if not in_block else False
            continue
        if not in_block:
            continue
        marker = re.match(r"^# on (\S+)$", line.strip())
        if marker:
            node = marker.group(1)
            continue
        if line.strip().startswith("#") or not line.strip():
            continue
        text = pending + line.split(" #", 1)[0].strip()
        if text.endswith("\\"):
            pending = text[:-1] + " "
            continue
        pending = ""
        steps.append((node, text))
    return steps


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.staging = tmp / "staging"
        self.daemons: dict[str, RunningDaemon] = {}
        self.ran: list[str] = []
        outside = make_ca("Outside Commercial CA")
        self.work = tmp / "work"
        write(self.work / "outside-ca.crt", outside.cert_pem())
        key = outside.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        write(self.work / "outside-ca.key", key, 0o600)

    def root(self, host: str) -> Path:
        root = self.tmp / "nodes" / host
        if not root.exists():
            (root / "home").mkdir(parents=True)
            (root / "desired-state.json").write_text(json.dumps({"hostname": host}))
        return root

    def socket(self, host: str) -> Path:
        return Path("/tmp") / f"sr-docs-{os.getpid()}-{host.split('.')[0]}.sock"

    def env(self, host: str) -> dict[str, str]:
        root = self.root(host)
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "SSLRECONCILER_DESIRED_STATE": str(root / "desired-state.json"),
            "SSLRECONCILER_STATE_DIR": str(root / "state"),
            "SSLRECONCILER_SOCKET": str(self.daemons[host].socket if host in self.daemons else self.socket(host)),
            "SSLRECONCILER_CREDENTIALS_DIR": str(root / "etc-sslreconciler"),
        }

    def mapped(self, host: str, command: str) -> str:
        root = self.root(host)
        text = command.replace("$(hostname -f)", host).replace("$S", str(self.staging))
        text = text.replace(STAGING, str(self.staging)).replace("/etc/sipxpbx/ssl", str(root / "ssl"))
        return text.replace("/root/", f"{root / 'home'}/")

    def run(self, host: str, command: str) -> None:
        if command.startswith("S="):
            return
        if command == "systemctl enable --now sslreconciler":
            root = self.root(host)
            node = Node(root, host, None, None)  # type: ignore[arg-type]
            self.daemons[host] = RunningDaemon(node, root / "daemon").start()
            self.ran.append(f"{host}: {command}")
            return
        if command.startswith(SKIPPED):
            return
        if command.startswith("scp "):  # scp FILE HOST:/root/ -> the other node's home
            _, src, dest = command.split()
            other, path = dest.split(":", 1)
            shutil.copy(self.mapped(host, src), self.mapped(other, path))
            self.ran.append(f"{host}: {command}")
            return
        proc = subprocess.run(["bash", "-c", self.mapped(host, command)], cwd=self.work, env=self.env(host),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{host}: {command}\n{proc.stdout}\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        self.ran.append(f"{host}: {command}")

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.close()


@pytest.fixture
def docs_cluster(tmp_path: Path):
    cluster = Cluster(tmp_path)
    yield cluster
    cluster.close()


def test_every_command_in_operations_md_runs(docs_cluster: Cluster) -> None:
    steps = doc_steps(REPO / "docs" / "operations.md")
    for host, command in steps:
        docs_cluster.run(host, command)
    assert sum("sslreconciler " in r for r in docs_cluster.ran) >= 12, docs_cluster.ran
    assert set(docs_cluster.daemons) == {"master.example.com", "sec1.example.com"}
    status = run_cli("status", "--socket", docs_cluster.daemons["sec1.example.com"].socket)
    assert status.rc == 0 and "SSLRECONCILER OK" in status.out, status.out
    listing = run_cli("pki", "list", "--staging", docs_cluster.staging)
    assert "left to re-issue under the current CA (2)" in listing.out, listing.out


@pytest.mark.slow
def test_every_command_in_pki_md_runs(docs_cluster: Cluster) -> None:
    steps = doc_steps(REPO / "docs" / "pki.md")
    for host, command in steps:
        docs_cluster.run(host, command)
    assert sum("sslreconciler " in r for r in docs_cluster.ran) >= 25, docs_cluster.ran
    master, sec1 = (docs_cluster.root(h) / "ssl" for h in ("master.example.com", "sec1.example.com"))
    # the rotation ended: both nodes trust the new CA only, and each verifies the other
    for node in (master, sec1):
        assert {p.name for p in (node / "authorities").glob("ca*.crt")} == {"ca2.master.example.com.crt"}
    for a, b in ((master, sec1), (sec1, master)):
        assert openssl("verify", "-CApath", a / "authorities", b / "ssl.crt").stdout.strip().endswith("OK")
    assert "ca2.master.example.com" in keytool_list(sec1 / "authorities.jks")
    # the web flow ended where it started (two rollbacks), with no warning left on the master
    report = run_cli("check", "--ssl-dir", master, "--json",
                     "--desired-state", docs_cluster.root("master.example.com") / "desired-state.json").json()
    assert report["status"] == "ok", report["findings"]


def test_make_run_can_be_repeated(tmp_path: Path) -> None:
    """The demo re-creates its spare web pair once the README's walkthrough used it."""
    ssl = tmp_path / "var" / "ssl"
    demo = [sys.executable, "-m", "sslreconciler.cluster.demo", str(ssl)]
    subprocess.run(demo, check=True, capture_output=True, timeout=120)
    spare = tmp_path / "var" / "new-web"
    first = (spare / "ssl-web.crt").read_bytes()
    for name in ("ssl-web.key", "ssl-web.crt"):
        os.rename(spare / name, ssl / name)  # the README's step
    again = subprocess.run(demo, check=True, capture_output=True, text=True, timeout=120)
    assert "a new spare web pair" in again.stdout
    assert (spare / "ssl-web.crt").read_bytes() != first
    (ca_file,) = (ssl / "authorities").glob("ca.*.crt")
    assert openssl("verify", "-CAfile", ca_file, spare / "ssl-web.crt").stdout.strip().endswith("OK")
    assert oct((spare / "ssl-web.key").stat().st_mode & 0o777) == "0o600"
    assert not list(ssl.glob("demo-ca*"))  # the CA key is kept beside the node dir, never in it
