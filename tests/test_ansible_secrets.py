"""The Ansible collection never shows a secret, and writes the desired state (which may hold the store
password) root-owned, 0640, in the service's group: the daemon reads it, no other user does, only root
changes it.

The install and rollout plays are run for real (ansible-core of this venv, ``ansible_connection=local``,
one node that is also the master) with ``--diff -v``, as an operator checking a change would run them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansiblekit import BIN, PLAYBOOKS, ansible_env, link_collection

HOST = "node1.example.com"
SECRETS = ("Sec-ret-7f3a9c-first", "Sec-ret-0b21d4-second")


class Node:
    def __init__(self, root: Path, group: str) -> None:
        self.root = root
        self.sockets = Path(tempfile.mkdtemp(prefix="sra-", dir="/tmp"))  # AF_UNIX paths stay short
        self.desired = root / "etc" / "desired-state.json"
        self.state = root / "state"
        self.inventory = root / "inventory.json"
        self.staging = root / "staging"
        self.bundles = root / "controller-bundles"
        self.group = group
        self.env = ansible_env(root)
        link_collection(root)

    def play(self, playbook: str, password: str, **more: object) -> subprocess.CompletedProcess[str]:
        """A playbook on this one node (also the master), with a desired state holding ``password``; its
        output with diffs and verbose results, as an operator checking a change would run it."""
        host_vars = {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "sslreconciler_install_method": "none",
            "sslreconciler_bin": str(BIN / "sslreconciler"),
            "sslreconciler_service_manager": "background",
            "sslreconciler_service_group": self.group,
            "sslreconciler_ssl_dir": str(self.root / "ssl"),
            "sslreconciler_state_dir": str(self.state),
            "sslreconciler_root_state_dir": str(self.root / "root-state"),
            "sslreconciler_config": str(self.root / "etc" / "sslreconciler.toml"),
            "sslreconciler_desired_state_file": str(self.desired),
            "sslreconciler_socket": str(self.sockets / "health.sock"),
            "sslreconciler_settings": {"log_format": "json"},
            "sslreconciler_desired_state": {"password": {"value": password}, "expiry_warning_days": 20},
            "sslreconciler_staging": str(self.staging),
            "sslreconciler_ca_name": "ca.node1.example.com",
            "sslreconciler_bundle_dir": str(self.bundles),
            **more,
        }
        self.inventory.write_text(json.dumps({"all": {"children": {
            "sslreconciler_master": {"hosts": {HOST: {}}},
            "sslreconciler_nodes": {"hosts": {HOST: host_vars}}}}}))
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), str(PLAYBOOKS / playbook),
                               "--diff", "-v"], capture_output=True, text=True, env=self.env, timeout=900)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        return proc

    def stop(self) -> None:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((self.state / "daemon.pid").read_text()), signal.SIGTERM)
        shutil.rmtree(self.sockets, ignore_errors=True)


@pytest.fixture
def node(tmp_path: Path, service_user: pwd.struct_passwd) -> Iterator[Node]:
    n = Node(tmp_path, group=service_user.pw_name)  # the service user's group, as `sipx` under the unit
    yield n
    n.stop()


def _assert_written_for_the_service(node: Node, service_user: pwd.struct_passwd, password: str) -> None:
    st = node.desired.stat()
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o640", 0, service_user.pw_gid), (
        f"{node.desired}: mode {oct(st.st_mode & 0o7777)}, owner {st.st_uid}:{st.st_gid}")
    assert json.loads(node.desired.read_text())["password"] == {"value": password}


def test_install_with_diff_and_verbose_never_shows_the_password(node: Node, service_user: pwd.struct_passwd) -> None:
    first = node.play("install.yml", SECRETS[0])
    assert SECRETS[0] not in first.stdout + first.stderr, "the store password is in the play's output"
    _assert_written_for_the_service(node, service_user, SECRETS[0])
    # A changed password (the diff of an existing file), over a file an older role left 0644 and owned by
    # another user: the new password never shows, and the file ends root's, 0640, the service's group.
    os.chown(node.desired, service_user.pw_uid, service_user.pw_gid)
    node.desired.chmod(0o644)
    second = node.play("install.yml", SECRETS[1])
    output = second.stdout + second.stderr
    assert SECRETS[0] not in output and SECRETS[1] not in output, "the store password is in the play's output"
    assert "changed=" in output and "failed=0" in output
    _assert_written_for_the_service(node, service_user, SECRETS[1])


def test_rollout_shows_no_key_and_keeps_the_bundle_it_carries_0600(node: Node) -> None:
    node.play("install.yml", SECRETS[0])
    out = node.play("rollout.yml", SECRETS[0], sslreconciler_keep_bundles=True, sslreconciler_health_timeout=240)
    output = out.stdout + out.stderr
    kept = node.bundles / f"{HOST}.bundle.tgz"
    assert oct(kept.stat().st_mode & 0o7777) == "0o600", f"{kept} is {oct(kept.stat().st_mode & 0o7777)}"
    for key in (node.staging / f"{HOST}.key", node.root / "ssl" / "ssl.key"):
        body = [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
        assert body and not any(line in output for line in body), f"a line of {key} is in the play's output"
    assert SECRETS[0] not in output
