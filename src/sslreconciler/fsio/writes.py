"""Atomic writes, links and attribute changes inside an anchored directory (see the package's docstring).

Writes go to a temp file created ``O_EXCL|O_NOFOLLOW`` in the directory with its final mode (private
material is never readable by others, not even for a moment), fsynced, renamed over the target (which
replaces a symlink rather than writing through it), and the directory is fsynced so the rename survives
a power cut. Modes and owners are changed on the descriptor that was checked, never by name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from sslreconciler.fsio.reads import open_dir, opened_dir

# Every temp file this program creates starts with this, so watchers and clean-up can recognise them.
TEMP_PREFIX = ".sslreconciler-"
# The writer lock's file in the ssl dir (sslreconciler.writer_lock), and its candidates' temp names: a
# candidate is left alone by the temp-file sweep, a waiting writer may be about to swap it in.
LOCK_NAME = ".sslreconciler.lock"
LOCK_TEMP_PREFIX = f"{TEMP_PREFIX}{LOCK_NAME}."


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(name: str) -> str:
    return f"{TEMP_PREFIX}{name}.{secrets.token_hex(4)}.tmp"


def write_temp_at(
    dir_fd: int, name: str, data: bytes, mode: int, uid: int | None = None, gid: int | None = None
) -> str:
    """A fsynced temp file beside ``name`` holding ``data`` with its final mode and owner; its name."""
    tmp = _temp_name(name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away; never adds any to a 0600 file
            if uid is not None or gid is not None:
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp


def atomic_write_at(
    dir_fd: int, name: str, data: bytes, mode: int, uid: int | None = None, gid: int | None = None
) -> None:
    """Replace ``name`` in the directory ``dir_fd`` with ``data``: readers see the old or the new."""
    replace_together_at(dir_fd, [(name, data, mode)], uid, gid)


def replace_together_at(
    dir_fd: int, files: list[tuple[str, bytes, int]], uid: int | None = None, gid: int | None = None
) -> None:
    """Replace several files of one directory as one step as far as a filesystem allows: every temp file
    is written and fsynced first, so a write error (disk full, read-only) changes nothing; only then are
    they renamed in, back to back. ``files``: (name, data, mode)."""
    staged: list[tuple[str, str]] = []
    try:
        for name, data, mode in files:
            staged.append((write_temp_at(dir_fd, name, data, mode, uid, gid), name))
        for tmp, name in staged:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        for tmp, _ in staged:  # renamed ones are gone already; a failure leaves no temp behind
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
    os.fsync(dir_fd)


def atomic_write(target: Path, data: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Replace ``target`` with ``data`` so that readers see the old file or the new, never a part."""
    with opened_dir(target.parent) as dir_fd:
        atomic_write_at(dir_fd, target.name, data, mode, uid, gid)


def atomic_symlink_at(dir_fd: int, name: str, points_to: str) -> None:
    """Make ``name`` a symlink to ``points_to``, replacing whatever was there in one rename."""
    tmp = _temp_name(name)
    os.symlink(points_to, tmp, dir_fd=dir_fd)
    try:
        uid, gid = owner_for_new_files(dir_fd)
        if uid is not None:  # root in the service user's directory: the link is that user's, as a file is
            os.chown(tmp, uid, -1 if gid is None else gid, dir_fd=dir_fd, follow_symlinks=False)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def new_symlink_at(dir_fd: int, name: str, points_to: str, owner: tuple[int | None, int | None]) -> None:
    """Make ``name`` a symlink to ``points_to`` where nothing had that name: ``symlinkat`` creates it in
    place or fails (no temp link, no rename, no stat: a cold directory's 10,000 hash links cost one call
    each, and one fsync of the directory after them all). Something that took the name since it was
    looked at: a symlink is replaced in one rename (``atomic_symlink_at``); anything else is left alone
    (EEXIST). ``owner``: ``owner_for_new_files(dir_fd)``, asked once for all the links."""
    try:
        os.symlink(points_to, name, dir_fd=dir_fd)
    except FileExistsError:
        st = lstat_at(dir_fd, name)
        if st is None or not stat.S_ISLNK(st.st_mode):
            raise
        atomic_symlink_at(dir_fd, name, points_to)
        return
    uid, gid = owner
    if uid is not None:  # root in the service user's directory: the link is that user's, as a file is
        os.chown(name, uid, -1 if gid is None else gid, dir_fd=dir_fd, follow_symlinks=False)


def atomic_symlink(target: Path, points_to: str) -> None:
    with opened_dir(target.parent) as dir_fd:
        atomic_symlink_at(dir_fd, target.name, points_to)


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def set_attributes_at(
    dir_fd: int, name: str, checked: os.stat_result, mode: int | None, uid: int | None, gid: int | None
) -> None:
    """chown/chmod the very file that was checked: never a symlink, never another inode.

    Done through an O_PATH|O_NOFOLLOW descriptor (so a file of mode 0000 can still be fixed) and its
    /proc/self/fd entry, which names that inode and nothing else.
    """
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        same = (st.st_dev, st.st_ino, st.st_ctime_ns) == (checked.st_dev, checked.st_ino, checked.st_ctime_ns)
        if not stat.S_ISREG(st.st_mode) or not same:  # ctime too: an inode number freed and reused differs
            raise OSError(errno.ESTALE, "was replaced while it was checked; left alone", name)
        proc = f"/proc/self/fd/{fd}"
        if uid is not None or gid is not None:
            os.chown(proc, -1 if uid is None else uid, -1 if gid is None else gid)
        if mode is not None:
            os.chmod(proc, mode)
    finally:
        os.close(fd)


def owner_for_new_files(dir_fd: int) -> tuple[int | None, int | None]:
    """As root in a directory another user owns: that user and group, so the service can read what
    root wrote there (a 0600 key owned by root would lock it out). Otherwise (None, None): as is."""
    if os.geteuid() != 0:
        return None, None
    st = os.fstat(dir_fd)
    if st.st_uid == 0:
        return None, None
    return st.st_uid, st.st_gid


def remove_stale_temp_files(directory: Path | int) -> list[str]:
    """Remove temp files (and temp links) an interrupted run left behind; the names of those removed."""
    removed: list[str] = []
    try:
        fd = open_dir(directory) if isinstance(directory, Path) else os.dup(directory)
    except OSError:
        return removed
    try:
        for name in os.listdir(fd):
            if name.startswith(TEMP_PREFIX) and name.endswith(".tmp") and not name.startswith(LOCK_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=fd)
                    removed.append(name)
    except OSError:
        pass
    finally:
        os.close(fd)
    return removed
