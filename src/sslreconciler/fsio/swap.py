"""A set of files replaced as one: a versioned directory, and a symlink to it swapped with one rename.

``live -> .live.<hex>.d`` (as Kubernetes' ``..data`` or certbot's ``live/``): a new
version is written in full (every file created with its final mode, fsynced, the directory fsynced)
before the symlink is renamed over the old one and the parent fsynced. A SIGKILL at any point leaves
the old set or the new one; a half-made version, a temp link or a replaced version is removed by the
next writer (``remove_versions_at``). All relative to the parent's descriptor; no link is followed.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat

from sslreconciler.fsio.writes import atomic_symlink_at, write_temp_at

VERSION_DIR_MODE = 0o755  # the files inside carry their own modes (a key 0600)


def version_pattern(link: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(link)}\.[0-9a-f]{{16}}\.d$")


def current_version_at(dir_fd: int, link: str) -> str | None:
    """The version ``link`` points at, when it is a symlink to one of ours; None otherwise."""
    try:
        target = os.readlink(link, dir_fd=dir_fd)
    except OSError:
        return None
    return target if version_pattern(link).match(target) else None


def swap_set_at(
    dir_fd: int, link: str, files: list[tuple[str, bytes, int]], uid: int | None = None, gid: int | None = None
) -> str:
    """Write ``files`` ((name, data, mode)) into a new version and swap ``link`` to it; the new version's
    name. The version replaced stays until the next writer (a reader that resolved it may still read it);
    older ones are removed now."""
    before = current_version_at(dir_fd, link)
    version = f".{link}.{secrets.token_hex(8)}.d"
    os.mkdir(version, VERSION_DIR_MODE, dir_fd=dir_fd)
    try:
        fd = os.open(version, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            os.fchmod(fd, VERSION_DIR_MODE)
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            for name, data, mode in files:
                tmp = write_temp_at(fd, name, data, mode, uid, gid)
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        atomic_symlink_at(dir_fd, link, version)
    except BaseException:
        with contextlib.suppress(OSError):
            _remove_version(dir_fd, version)
        raise
    os.fsync(dir_fd)
    remove_versions_at(dir_fd, link, keep={version, before or version})
    return version


def remove_versions_at(dir_fd: int, link: str, keep: set[str] | None = None) -> list[str]:
    """Remove every version of ``link`` but ``keep`` (default: the one it points at); the names removed."""
    if keep is None:
        current = current_version_at(dir_fd, link)
        keep = {current} if current else set()
    pattern = version_pattern(link)
    removed = []
    for name in os.listdir(dir_fd):
        if pattern.match(name) and name not in keep:
            with contextlib.suppress(OSError):
                _remove_version(dir_fd, name)
                removed.append(name)
    return removed


def _remove_version(dir_fd: int, version: str) -> None:
    """A version directory and the plain files in it (it never holds anything else); never via a link."""
    st = os.stat(version, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISDIR(st.st_mode):
        return
    fd = os.open(version, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for name in os.listdir(fd):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(version, dir_fd=dir_fd)
