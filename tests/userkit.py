"""An unprivileged user made for a test, a world-traversable place to work, and acting as that user.

The privilege tests run as root (as the docs show root running reconcile and install commands) on
directories owned by this user, the way the service user owns /etc/sipxpbx/ssl.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest


def make_service_user(tag: str = "") -> Iterator[pwd.struct_passwd]:
    """For a fixture: a fresh system user and group, removed afterwards. ``tag`` tells apart the users
    one test process makes."""
    if os.geteuid() != 0:
        pytest.skip("needs root: it creates a user and acts as root on that user's directory")
    name = f"srt{tag}{os.getpid() % 1_000_000}"
    subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True, timeout=60)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=60)


def make_world() -> Iterator[Path]:
    """A directory every user may traverse (pytest's tmp_path is root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="sr13-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, user.pw_uid, user.pw_gid, follow_symlinks=False)


def as_user(user: pwd.struct_passwd, *argv: str | Path, groups: Sequence[int] = ()) -> list[str]:
    """argv run as ``user`` with no supplementary groups but ``groups`` (e.g. the socket's group)."""
    extra = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", extra, "--", *map(str, argv)]


def run_as(user: pwd.struct_passwd, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """A Python snippet run as ``user``; fails the test when it fails."""
    proc = subprocess.run(as_user(user, sys.executable, "-c", script), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def outside_secret(base: Path, name: str = "shadow") -> tuple[Path, bytes]:
    """A root-only file outside every directory the user owns: what an attacker would aim at."""
    secret = b"root:$6$not-really-a-hash:19000:0:99999:7:::\n"
    path = base / name
    path.write_bytes(secret)
    path.chmod(0o600)
    return path, secret


def state_of(path: Path) -> tuple[int, int, int, int, bytes]:
    st = path.lstat()
    data = path.read_bytes() if path.is_file() and not path.is_symlink() else os.readlink(path).encode()
    return st.st_mode, st.st_uid, st.st_gid, st.st_ino, data
