"""rotate.yml's master steps rerun after a refusal or a failure (issue 25, problem 5): no staging file records
a step that did not happen, and every rerun converges or refuses naming the state and the fix.

Only the master's plays run (--tags rotate_begin / rotate_retire), on a staging area of this test's own: no
daemon, and a fresh node (settings and an empty ssl dir) for the pre-flight to ask. On the code before the fix, a refused rerun wrote ``rotation-from`` naming the current CA
and a later rotate_retire tried to retire it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansiblekit import BIN, PLAYBOOKS, ansible_env, link_collection

from conftest import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the staging area is root's (the playbooks run as root)"),
]

MASTER = "node1.example.com"
OLD, NEW, OTHER = "ca.node1.example.com", "ca2.node1.example.com", "ca3.node1.example.com"


class Master:
    def __init__(self, root: Path) -> None:
        self.root, self.staging = root, root / "staging"
        self.env = ansible_env(root)
        link_collection(root)
        self.inventory = root / "inventory.json"
        # rotate.yml's pre-flight asks the node (`pki node-cas`) what it depends on: a fresh node's settings
        # (an empty ssl dir), so it answers "nothing" and only the master's steps do anything.
        node = root / "node"
        (node / "ssl").mkdir(parents=True)
        config = node / "sslreconciler.toml"
        config.write_text(f'ssl_dir = "{node / "ssl"}"\nstate_dir = "{node / "state"}"\n')
        self.inventory.write_text(
            json.dumps(
                {
                    "all": {
                        "vars": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "sslreconciler_install_method": "none",
                            "sslreconciler_bin": str(BIN / "sslreconciler"),
                            "sslreconciler_staging": str(self.staging),
                            "sslreconciler_config": str(config),
                            "sslreconciler_root_state_dir": str(node / "root-state"),
                        },
                        "children": {
                            "sslreconciler_master": {"hosts": {MASTER: {}}},
                            "sslreconciler_nodes": {"hosts": {MASTER: {}}},
                        },
                    }
                }
            )
        )

    def rotate(self, tags: str, new: str | None = None) -> subprocess.CompletedProcess[str]:
        extra = ["-e", f"sslreconciler_new_ca_name={new}"] if new else []
        return subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                str(self.inventory),
                str(PLAYBOOKS / "rotate.yml"),
                "--tags",
                tags,
                *extra,
            ],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
        )

    def record(self) -> dict[str, object]:
        return json.loads((self.staging / "ca-rotation.json").read_text())

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in self.staging.iterdir() if p.is_file()}

    def rotation_from(self) -> str | None:
        path = self.staging / "rotation-from"
        return path.read_text().strip() if path.exists() else None


def test_a_rotation_rerun_after_a_refusal_never_records_a_step_that_did_not_happen(tmp_path: Path) -> None:
    m = Master(tmp_path)
    assert run_cli("pki", "init-ca", "--staging", m.staging, "--name", OLD).rc == 0

    # Begin; then the same step again (a rerun after a later step failed): it resumes, makes no CA.
    done = m.rotate("rotate_begin", NEW)
    assert done.returncode == 0, done.stdout[-4000:]
    assert m.record()["previous"] == OLD and m.rotation_from() == OLD
    before = m.files()
    again = m.rotate("rotate_begin", NEW)
    assert again.returncode == 0, again.stdout[-4000:]
    assert "is under way" in again.stdout and "no new CA made" in again.stdout
    assert m.files() == before and m.rotation_from() == OLD

    # Another new CA while this rotation is under way: refused, the state and the fix named, nothing written.
    refused = m.rotate("rotate_begin", OTHER)
    assert refused.returncode != 0
    assert f"a rotation from {OLD} to {NEW} is under way" in refused.stdout
    assert f"sslreconciler_new_ca_name={NEW}" in refused.stdout
    assert m.files() == before

    retired = m.rotate("rotate_retire")
    assert retired.returncode == 0, retired.stdout[-4000:]
    assert m.record() == {"current": NEW, "previous": None, "retired": [OLD]}
    assert m.rotation_from() is None
    after_retire = m.files()

    # The rerun the issue saw: rotate.yml again with the name now taken. Refused before anything is
    # written: no rotation-from naming the current CA.
    taken = m.rotate("rotate_begin", NEW)
    assert taken.returncode != 0
    assert f"{NEW} is the current CA already" in taken.stdout and "--tags rotate_remove" in taken.stdout
    assert m.rotation_from() is None and m.files() == after_retire

    # ... so a later rotate_retire never tries to retire the current CA: it converges.
    converged = m.rotate("rotate_retire")
    assert converged.returncode == 0, converged.stdout[-4000:]
    assert f"{OLD} was retired already" in converged.stdout
    assert m.files() == after_retire and (m.staging / f"{NEW}.key").exists()

    # A rotation-from left by the old playbook (naming the current CA): refused, named, the fix said.
    (m.staging / "rotation-from").write_text(f"{NEW}\n")
    stale = m.rotate("rotate_retire")
    assert stale.returncode != 0
    assert f"rotation-from names {NEW}, a step that never happened" in stale.stdout
    assert (m.staging / f"{NEW}.key").exists() and m.record()["current"] == NEW
