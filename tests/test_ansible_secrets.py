"""The Ansible collection never shows a secret, and writes the desired state (which may hold the store
password) root-owned, 0640, in the service's group: the daemon reads it, no other user does, only root
changes it.

The install and rollout plays are run for real (ansible-core of this venv, ``ansible_connection=local``,
one node that is also the master) with ``--diff -v``, as an operator checking a change would run them.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansiblekit import NODE as HOST
from ansiblekit import OneNode

SECRETS = ("Sec-ret-7f3a9c-first", "Sec-ret-0b21d4-second")


def _play(node: OneNode, playbook: str, password: str, **more: object) -> subprocess.CompletedProcess[str]:
    """A playbook on this one node (also the master), with a desired state holding ``password``; its
    output with diffs and verbose results, as an operator checking a change would run it."""
    desired = {"password": {"value": password}, "expiry_warning_days": 20}
    proc = node.play(playbook, "--diff", "-v", sslreconciler_desired_state=desired, **more)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture
def node(tmp_path: Path, service_user: pwd.struct_passwd) -> Iterator[OneNode]:
    n = OneNode(tmp_path, group=service_user.pw_name)  # the service user's group, as `sipx` under the unit
    yield n
    n.stop()


def _assert_written_for_the_service(node: OneNode, service_user: pwd.struct_passwd, password: str) -> None:
    st = node.desired.stat()
    assert (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid) == ("0o640", 0, service_user.pw_gid), (
        f"{node.desired}: mode {oct(st.st_mode & 0o7777)}, owner {st.st_uid}:{st.st_gid}")
    assert json.loads(node.desired.read_text())["password"] == {"value": password}


@pytest.mark.slow
def test_install_with_diff_and_verbose_never_shows_the_password(node: OneNode, service_user: pwd.struct_passwd) -> None:
    first = _play(node, "install.yml", SECRETS[0])
    assert SECRETS[0] not in first.stdout + first.stderr, "the store password is in the play's output"
    _assert_written_for_the_service(node, service_user, SECRETS[0])
    # A changed password (the diff of an existing file), over a file an older role left 0644 and owned by
    # another user: the new password never shows, and the file ends root's, 0640, the service's group.
    os.chown(node.desired, service_user.pw_uid, service_user.pw_gid)
    node.desired.chmod(0o644)
    second = _play(node, "install.yml", SECRETS[1])
    output = second.stdout + second.stderr
    assert SECRETS[0] not in output and SECRETS[1] not in output, "the store password is in the play's output"
    assert "changed=" in output and "failed=0" in output
    _assert_written_for_the_service(node, service_user, SECRETS[1])


@pytest.mark.slow
def test_rollout_shows_no_key_and_keeps_the_bundle_it_carries_0600(node: OneNode) -> None:
    _play(node, "install.yml", SECRETS[0])
    out = _play(node, "rollout.yml", SECRETS[0], sslreconciler_keep_bundles=True, sslreconciler_health_timeout=240)
    output = out.stdout + out.stderr
    kept = node.bundles / f"{HOST}.bundle.tgz"
    assert oct(kept.stat().st_mode & 0o7777) == "0o600", f"{kept} is {oct(kept.stat().st_mode & 0o7777)}"
    for key in (node.staging / f"{HOST}.key", node.root / "ssl" / "ssl.key"):
        body = [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
        assert body and not any(line in output for line in body), f"a line of {key} is in the play's output"
    assert SECRETS[0] not in output
