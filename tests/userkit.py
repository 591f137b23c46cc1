"""An unprivileged user made for a test, a world-traversable place to work, and acting as that user.

The privilege tests run as root (as the docs show root running reconcile and install commands) on
directories owned by this user, the way the service user owns /etc/sipxpbx/ssl.

Python run as that user (``as_user(user, sys.executable, ...)``, daemonkit's ``wrapper``) does not run
``sys.executable``: the checkout and its venv may be where the user cannot go (a clone in root's 0700
home or under ``mktemp -d``; the venv's interpreter itself a link into /root/.pyenv). It runs
``user_python()``: a venv made once per test process in a 0755 directory under /tmp, on an interpreter
that user can run, holding a copy of the package under test and hard links (or copies) of the installed
distributions it needs. It is removed at the end of the session (conftest's pytest_sessionfinish); each
pytest process (xdist worker) makes its own. The user gets read and execute there, nothing else.
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

PROBE_UID = 65534  # nobody: an interpreter candidate must run for a user with no right to root's files
_USER_INSTALL: Path | None = None


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


def _runs_for_others(python: str) -> bool:
    """Whether ``python`` runs, as an unprivileged user, and is this interpreter's version (the compiled
    extensions in the venv are built for it)."""
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    probe = ["setpriv", f"--reuid={PROBE_UID}", f"--regid={PROBE_UID}", "--clear-groups", "--",
             python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    try:
        proc = subprocess.run(probe, capture_output=True, text=True, timeout=60, cwd="/")
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == want


def _base_python() -> str:
    """An interpreter an unprivileged user can run, of this interpreter's version."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [os.path.realpath(sys.executable), os.path.realpath(sys._base_executable),
                  f"/usr/bin/python{version}", f"/usr/local/bin/python{version}", shutil.which(f"python{version}")]
    tried = []
    for candidate in dict.fromkeys(c for c in candidates if c):
        if _runs_for_others(candidate):
            return candidate
        tried.append(candidate)
    raise RuntimeError(f"no Python {version} that an unprivileged user can run (tried {tried}): the tests that "
                       f"act as another user need one (e.g. apt-get install python{version})")


def _needed_distributions() -> list:
    """The installed distributions sslreconciler needs at run time (its dependencies, transitively)."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in metadata.requires("sslreconciler") or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = req.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen[name] = dist = metadata.distribution(req.name)
        todo.extend(Requirement(r) for r in dist.requires or [])
    return list(seen.values())


def _place(source: Path, target: Path) -> None:
    """A hard link when the file is world-readable and on the same file system, else a readable copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.stat().st_mode & 0o004:
        try:
            os.link(source, target)
            return
        except OSError:
            pass
    shutil.copy2(source, target)
    target.chmod(0o644 | (0o111 if os.access(source, os.X_OK) else 0))


def _make_user_install() -> Path:
    import sslreconciler

    base = Path(tempfile.mkdtemp(prefix="sr-userpy-", dir="/tmp"))  # this process's own, 0700 until done
    try:
        venv = base / "venv"
        subprocess.run([_base_python(), "-I", "-m", "venv", "--without-pip", str(venv)],
                       check=True, capture_output=True, timeout=120)
        site = Path(subprocess.run([str(venv / "bin" / "python"), "-I", "-c", "import sysconfig; "
                                    "print(sysconfig.get_paths()['purelib'])"],
                                   check=True, capture_output=True, text=True, timeout=60).stdout.strip())
        for dist in _needed_distributions():
            root = Path(dist.locate_file("")).resolve()
            for file in dist.files or []:
                source = Path(dist.locate_file(file)).resolve()
                if source.is_file() and source.is_relative_to(root):
                    _place(source, site / source.relative_to(root))
        package = Path(sslreconciler.__file__).parent  # the code under test, wherever the clone is
        shutil.copytree(package, site / "sslreconciler", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run([str(venv / "bin" / "python"), "-I", "-m", "compileall", "-q", str(site / "sslreconciler")],
                       check=True, capture_output=True, timeout=120)
        for path in [base, *base.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
            elif path.is_file() and not path.is_symlink() and path.stat().st_nlink == 1:
                path.chmod(path.stat().st_mode | 0o444)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return base


def user_python() -> str:
    """The interpreter for Python run as another user (see the module's docstring); made on first use."""
    global _USER_INSTALL
    if _USER_INSTALL is None:
        _USER_INSTALL = _make_user_install()
    return str(_USER_INSTALL / "venv" / "bin" / "python")


def remove_user_install() -> None:
    """At the end of the session (conftest)."""
    global _USER_INSTALL
    if _USER_INSTALL is not None:
        shutil.rmtree(_USER_INSTALL, ignore_errors=True)
        _USER_INSTALL = None


def as_user(user: pwd.struct_passwd, *argv: str | Path, groups: Sequence[int] = ()) -> list[str]:
    """argv run as ``user`` with no supplementary groups but ``groups`` (e.g. the socket's group).
    ``sys.executable`` as the program becomes ``user_python()``, which that user can run wherever the
    checkout is."""
    extra = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    program = [user_python(), *map(str, argv[1:])] if argv and str(argv[0]) == sys.executable else list(map(str, argv))
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", extra, "--", *program]


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
