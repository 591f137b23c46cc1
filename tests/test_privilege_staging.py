"""Root acts on nothing the service user wrote, round 3: the pki staging area and the hooks' programs.

The staging area holds the cluster CA key. Where the service user can change it (its own state dir,
a directory above, the directory itself), that user could swap in its own CA, so that root issues and
bundles with the attacker's key, or read root's new CA key: root's ``pki`` commands refuse with exit 2
before reading or writing anything. A hook's program run by root is root's code only when no other
user could change it: otherwise root does not run it. Everything runs as root through the real CLI, on
directories a real throwaway user owns.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from userkit import as_user, chown_tree

from conftest import run_cli, snapshot
from pkitools import Issued, seed_node

HOST = "master.example.com"
ROOT_CA = "ca.root.example.com"
EVIL_CA = "ca.evil.example.com"


def _as(user, *args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(as_user(user, sys.executable, "-m", "sslreconciler", *args),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _ok(*args: str | Path) -> str:
    result = run_cli(*args)
    assert result.rc == 0, result.out + result.err
    return result.out


def _refused(result, culprit: Path, fix: str) -> None:
    """Exit 2: a config error naming the staging area, the directory at fault and the fix; nothing printed."""
    assert result.rc == 2, result.out + result.err
    assert "Traceback" not in result.err, result.err
    assert "config error:" in result.err and str(culprit) in result.err, result.err
    assert "CA key" in result.err and fix in result.err, result.err
    assert result.out == "", result.out


def _users_staging(world: Path, user) -> Path:
    """The service user's 0700 state dir, as /var/lib/sslreconciler, with a staging area the user put
    there itself (its own CA and a certificate for HOST): what root finds after the swap."""
    state = world / "state"
    state.mkdir(mode=0o700)
    chown_tree(state, user)
    staging = state / "staging"
    _as(user, "pki", "init-ca", "--staging", staging, "--name", EVIL_CA)  # a user's own run: not judged
    _as(user, "pki", "issue", "--staging", staging, HOST)
    return staging


# --- A: the staging area ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["issue", HOST, "--renew"], ["bundle", HOST, "-o", "OUT"], ["init-ca", "--name", ROOT_CA],
    ["list"], ["renew", "--within", "5000"], ["rotate-ca", "--name", "ca2.root.example.com"],
])
def test_root_refuses_the_staging_area_the_user_swapped_in(world: Path, service_user, command: list[str]) -> None:
    """The user renamed root's staging area away and put its own there: root signs, bundles, lists and
    writes nothing with it; the refusal names the user's directory; not a file of it changes."""
    staging = _users_staging(world, service_user)
    out = world / "bundle.tgz"
    before = snapshot(staging.parent)
    result = run_cli("pki", command[0], "--staging", staging, *[str(out) if a == "OUT" else a for a in command[1:]])
    _refused(result, staging.parent, "/var/lib/sslreconciler-pki")
    assert f"directory {staging.parent} is owned by uid {service_user.pw_uid}" in result.err, result.err
    assert snapshot(staging.parent) == before, "root wrote into (or through) the user's staging area"
    assert not out.exists(), "root bundled the user's CA and key"


def test_root_refuses_a_staging_area_the_user_owns(world: Path, service_user) -> None:
    """Root's directories above, the staging area itself the user's (e.g. an old `chown -R sipx`)."""
    staging = world / "pki"
    staging.mkdir(mode=0o700)
    os.chown(staging, service_user.pw_uid, service_user.pw_gid)
    result = run_cli("pki", "init-ca", "--staging", staging, "--name", ROOT_CA)
    _refused(result, staging, f"chown -R root:root {staging}")
    assert list(staging.iterdir()) == [], "root wrote its CA key where the user reads it"


@pytest.mark.parametrize("mode", [0o770, 0o1777, 0o702])
def test_root_refuses_a_root_owned_staging_area_others_may_write(world: Path, service_user, mode: int) -> None:
    """Root's, but group- or world-writable (sticky or not): another user could add a CA or a record."""
    staging = world / "pki"
    staging.mkdir()
    os.chown(staging, 0, service_user.pw_gid)
    staging.chmod(mode)
    result = run_cli("pki", "init-ca", "--staging", staging, "--name", ROOT_CA)
    _refused(result, staging, f"chmod 0700 {staging}")
    assert "is writable by" in result.err, result.err
    assert list(staging.iterdir()) == []


def test_root_refuses_root_owned_staging_below_the_users_directory(world: Path, tmp_path: Path, service_user) -> None:
    """Root's 0700 staging area and CA, moved below a directory the user owns (or reached by root's own
    link into it): the user could rename it away at any time, so it counts as the user's."""
    good = tmp_path / "pki"
    _ok("pki", "init-ca", "--staging", good, "--name", ROOT_CA)
    _ok("pki", "issue", "--staging", good, HOST)
    theirs = world / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, service_user.pw_uid, service_user.pw_gid)
    staging = Path(shutil.move(str(good), theirs / "pki"))
    link = world / "pki-link"
    link.symlink_to(staging)
    for path in (staging, link):
        before = snapshot(staging)
        result = run_cli("pki", "bundle", "--staging", path, HOST, "-o", world / "b.tgz")
        _refused(result, theirs, "/var/lib/sslreconciler-pki")
        assert snapshot(staging) == before and not (world / "b.tgz").exists()


@pytest.mark.parametrize("left", [f"{ROOT_CA}.key", f"{HOST}.crt", "ca-rotation.json"])
def test_root_uses_no_staged_file_the_user_still_owns(world: Path, tmp_path: Path, service_user, left: str) -> None:
    """The staging area was the user's and was made root's without its files (`chown` without -R): a
    key, certificate or rotation record the user can still write is refused by name, nothing written."""
    staging = tmp_path / "pki"
    _ok("pki", "init-ca", "--staging", staging, "--name", ROOT_CA)
    _ok("pki", "issue", "--staging", staging, HOST)
    (staging / "ca-rotation.json").write_text(json.dumps({"current": ROOT_CA, "previous": None, "retired": []}))
    os.chown(staging / left, service_user.pw_uid, service_user.pw_gid)
    before = snapshot(staging)
    result = run_cli("pki", "bundle", "--staging", staging, HOST, "-o", world / "b.tgz")
    _refused(result, staging / left, f"chown root:root {staging / left}")
    assert snapshot(staging) == before and not (world / "b.tgz").exists()


def test_root_only_staging_works_and_init_ca_makes_it_root_only(world: Path, tmp_path: Path) -> None:
    """The documented layout: root's directories all the way, the staging area made 0700 by init-ca,
    reached through root's own link too; every pki command works as before."""
    staging = world / "var" / "lib" / "sslreconciler-pki"  # world: root's 0755, as /var/lib
    _ok("pki", "init-ca", "--staging", staging, "--name", ROOT_CA)
    st = staging.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o700)
    assert (staging.parent.stat().st_mode & 0o777) == 0o700
    link = world / "pki"
    link.symlink_to(staging)
    _ok("pki", "issue", "--staging", link, HOST)
    _ok("pki", "bundle", "--staging", link, HOST, "-o", tmp_path / "b.tgz")
    assert json.loads(_ok("pki", "list", "--staging", staging, "--json"))[0]["ca"] == ROOT_CA


def test_the_service_user_keeps_its_own_staging_area(world: Path, service_user) -> None:
    """Not root: a user's staging area in its own directory is that user's to use (not judged)."""
    staging = _users_staging(world, service_user)
    rows = json.loads(_as(service_user, "pki", "list", "--staging", staging, "--json").stdout)
    assert [r["ca"] for r in rows] == [EVIL_CA]


# --- B: the programs root's hooks run --------------------------------------------------------------------


def _hook_node(world: Path, ca: Issued, user, program: str, marker: Path) -> tuple[Path, Path]:
    """A node whose ssl dir the user owns; root's desired state runs ``program MARKER`` after the first
    reconcile writes ssl.keystore. The desired state and root's state dir are root's."""
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, user)
    node.desired.write_text(json.dumps({
        "hostname": HOST, "hooks": [{"name": "marker", "after": ["ssl.keystore"], "command": [program, str(marker)]}],
    }))
    node.desired.chmod(0o644)
    state = world / "root-state"
    state.mkdir(mode=0o700)
    return node.ssl_dir, node.desired


def _script(path: Path, mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\necho ran > "$1"\n')
    path.chmod(mode)
    return path


def _root_reconcile(ssl_dir: Path, desired: Path, world: Path, env: dict[str, str] | None = None):
    return run_cli("reconcile", "--ssl-dir", ssl_dir, "--desired-state", desired, "--state-dir",
                   world / "root-state", "--json", env=env)


def _not_run(result, program: Path, marker: Path) -> None:
    assert result.rc == 1, result.out + result.err  # the stores are right; a hook did not end ok
    hook = result.json()["hooks"]["marker"]
    assert hook["outcome"] == "error", hook
    assert f"hook program {program} not run" in hook["detail"] and "root:root" in hook["detail"], hook
    assert not marker.exists(), "root ran a program the service user could change"


@pytest.mark.parametrize("how", ["dir-is-users", "file-is-users", "group-writable", "link-into-users-dir"])
def test_root_runs_no_hook_program_the_user_could_change(world: Path, ca: Issued, service_user, how: str) -> None:
    marker = world / "marker"
    theirs = world / "theirs"
    theirs.mkdir(mode=0o755)
    if how == "dir-is-users":  # root's own script, in a directory the user may rename it out of
        program = _script(theirs / "hook.sh")
        os.chown(theirs, service_user.pw_uid, service_user.pw_gid)
    elif how == "file-is-users":
        program = _script(world / "bin" / "hook.sh")
        os.chown(program, service_user.pw_uid, service_user.pw_gid)
    elif how == "group-writable":
        program = _script(world / "bin" / "hook.sh", 0o775)
        os.chown(program, 0, service_user.pw_gid)
    else:  # root's link, in root's directory, to a script in the user's directory
        target = _script(theirs / "hook.sh")
        os.chown(theirs, service_user.pw_uid, service_user.pw_gid)
        program = world / "bin" / "hook"
        program.parent.mkdir()
        program.symlink_to(target)
    ssl_dir, desired = _hook_node(world, ca, service_user, str(program), marker)
    result = _root_reconcile(ssl_dir, desired, world)
    _not_run(result, program, marker)
    culprit = {"dir-is-users": theirs, "link-into-users-dir": theirs}.get(how, program)
    assert str(culprit) in result.json()["hooks"]["marker"]["detail"]


def test_root_judges_the_program_a_bare_name_finds_in_path(world: Path, ca: Issued, service_user) -> None:
    """``["myhook", ...]`` found (as exec would) in a PATH directory the user owns: judged, not run."""
    marker = world / "marker"
    userbin = world / "userbin"
    program = _script(userbin / "myhook")
    chown_tree(userbin, service_user)
    ssl_dir, desired = _hook_node(world, ca, service_user, "myhook", marker)
    result = _root_reconcile(ssl_dir, desired, world, env={"PATH": f"{userbin}:{os.environ['PATH']}"})
    _not_run(result, program, marker)


def test_root_runs_a_root_owned_hook_program_as_before(world: Path, ca: Issued, service_user) -> None:
    """Root's 0755 script in root's directories (reached through root's link), and a bare name in PATH."""
    marker = world / "marker"
    program = _script(world / "bin" / "hook.sh")
    (world / "hook-link").symlink_to(program)
    ssl_dir, desired = _hook_node(world, ca, service_user, str(world / "hook-link"), marker)
    result = _root_reconcile(ssl_dir, desired, world)
    assert result.rc == 0, result.out + result.err
    assert result.json()["hooks"]["marker"]["outcome"] == "ok", result.out
    assert marker.read_text() == "ran\n" and marker.stat().st_uid == 0


def test_a_bare_name_of_roots_runs_from_path(world: Path, ca: Issued, service_user) -> None:
    marker = world / "marker"
    ssl_dir, desired = _hook_node(world, ca, service_user, "touch", marker)
    result = _root_reconcile(ssl_dir, desired, world)
    assert result.rc == 0, result.out + result.err
    assert result.json()["hooks"]["marker"]["outcome"] == "ok" and marker.exists(), result.out


def test_the_service_user_runs_its_own_hook_program(world: Path, ca: Issued, service_user) -> None:
    """Not root (the daemon as the service user): its own program in its own directory is not judged."""
    marker = world / "mine" / "marker"
    program = _script(world / "mine" / "hook.sh")
    ssl_dir, desired = _hook_node(world, ca, service_user, str(program), marker)
    chown_tree(world / "node", service_user)
    chown_tree(world / "mine", service_user)
    proc = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir",
                                  ssl_dir, "--desired-state", desired, "--json"), capture_output=True, text=True,
                          timeout=120, env={**os.environ, "SSLRECONCILER_STATE_DIR": str(world / "mine" / "st")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["hooks"]["marker"]["outcome"] == "ok"
    assert marker.stat().st_uid == service_user.pw_uid
