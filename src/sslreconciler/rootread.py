"""Reading a file that decides what root does: only when no other user could have written it.

The settings, the desired state (its hooks run as the caller) and a password file it names are read by
root's one-shots and by a daemon run as root. Such a file is used only when nobody but root could
have put its content there: the file itself, every directory on the way to it from ``/`` and every
symlink followed are owned by root, and no directory or file on the way is writable by group or
others (a sticky directory such as ``/tmp`` excepted: there others may add names, but not replace
root's, and the next entry must be root's in any case). A directory another user owns would let that
user rename the file away and put another in its place, so it counts as that user writing the file.

The walk goes one component at a time from ``/``, each opened ``O_PATH|O_NOFOLLOW`` relative to the
directory before it and judged by ``fstat`` of that descriptor; a symlink is followed by hand (its
target re-walked the same way); the file is read through ``fsio.read_at`` inside the last directory's
descriptor and judged by the ``fstat`` of the very descriptor read. Nothing is looked up by a path a
user could redirect between the check and the use.

Only root's reads are judged: a user reading files only it (or root) can write gains nothing, and
umask 002 systems make a user's files group-writable by that user's own group.

``open_dir_for_root`` walks the same way to a directory root writes in that is not its own (the ACME
webroot, www-data's): there only the symlinks are judged. The directories may be anyone's (what root
writes there belongs to their owner anyway), but a link another user owns could send root to write in
any directory of the system.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from sslreconciler.fsio import read_at, read_regular
from sslreconciler.model.findings import FindingCode, SourceError, error

MAX_LINKS = 40  # as the kernel's ELOOP limit
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Untrusted(Exception):
    """A file root would act on could have been written by another user; ``problem`` says how."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def advice(self) -> str:
        """The reason for a config error: what is wrong, why it matters, the fix."""
        return (
            f"root uses no settings or desired state another user could change (the hooks it names run as root): "
            f"{self.problem}; fix: chown root:root {self.path} && chmod 0644 {self.path} (0640 with the "
            "service's group when it holds a password), in directories only root can write (such as "
            "/etc/sslreconciler); or run the command as the user who owns it"
        )


def _judge(st: os.stat_result, shown: str) -> str:
    """Why an entry could be changed by a user other than root; empty when it cannot."""
    kind = "symlink" if stat.S_ISLNK(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else "file"
    if st.st_uid != 0:
        return f"{kind} {shown} is owned by uid {st.st_uid}, not root"
    if kind == "symlink":  # a link's own mode means nothing; who may replace it is its directory's matter
        return ""
    writable = st.st_mode & 0o022
    if writable and not (kind == "directory" and st.st_mode & stat.S_ISVTX):
        who = "group and others" if writable == 0o022 else "group" if writable & 0o020 else "others"
        return f"{kind} {shown} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def read_for_root(path: Path, display: str, limit: int, allow_empty: bool = True) -> bytes:
    """The bytes of the configuration file ``path`` (links followed), bounded and non-blocking.

    As root: Untrusted when any user but root could have written it; SourceError for the usual
    problems (missing, not a regular file, too large). Anyone else: as ``fsio.read_regular``."""
    if os.geteuid() != 0:
        return read_regular(path, display, limit, allow_empty)
    try:
        dir_fd, name, shared = _Walk(str(path), display).to_file()
    except OSError as exc:
        raise SourceError(error(display, f"cannot be resolved: {exc.strerror}", FindingCode.UNREADABLE)) from None
    try:
        data, st = read_at(dir_fd, name, display, None, limit, allow_empty)
    finally:
        os.close(dir_fd)
    problem = _judge(st, display)
    if not problem and shared and st.st_nlink > 1:  # a hard link another user made in a sticky directory
        problem = f"file {display} has {st.st_nlink} hard links, in a directory others may write"
    if problem:
        raise Untrusted(path, problem)
    return data


def open_dir_for_root(path: Path, flags: int) -> int:
    """The directory ``path`` opened with ``flags`` (plus O_DIRECTORY|O_NOFOLLOW: never a link in its last
    component as opened). As root, reached only through symlinks root owns: Untrusted naming the link
    another user owns; SourceError when missing; OSError otherwise. Anyone else: opened as it is."""
    flags |= os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    if os.geteuid() != 0:
        return os.open(path, flags)
    dir_fd, name, _ = _Walk(str(path), str(path), links_only=True).to_file()
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


class _Walk:
    """From ``/`` to the directory holding the file, one judged component at a time (``links_only``: the
    symlinks followed are judged, the directories not)."""

    def __init__(self, path: str, display: str, links_only: bool = False) -> None:
        self.path, self.display, self.links_only = path, display, links_only
        absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        self.todo = _parts(absolute)
        self.fd, self.where, self.shared = -1, "/", False
        self.links = 0

    def to_file(self) -> tuple[int, str, bool]:
        """The descriptor of the judged directory holding the file, the file's name in it, and whether
        that directory is one others may add names to (sticky). Untrusted, SourceError or OSError."""
        try:
            self._enter(os.open("/", _PATH | os.O_DIRECTORY), "/")
            while self.todo:
                part = self.todo.pop(0)
                if part == "..":
                    self._enter(os.open("..", _PATH | os.O_DIRECTORY, dir_fd=self.fd), _up(self.where))
                    continue
                shown = os.path.join(self.where, part)
                try:
                    inner = os.open(part, _PATH, dir_fd=self.fd)
                except FileNotFoundError:
                    gone = ("is a dangling symlink", FindingCode.DANGLING_SYMLINK) if self.links else None
                    raise SourceError(error(self.display, *(gone or ("is missing", FindingCode.MISSING)))) from None
                st = os.fstat(inner)
                if stat.S_ISLNK(st.st_mode):
                    try:
                        self._follow(inner, st, shown)
                    finally:
                        os.close(inner)
                elif not self.todo:  # the file itself: read_at opens it again inside fd, refusing a link
                    os.close(inner)
                    return self.fd, part, self.shared
                else:
                    self._enter(inner, shown)
            raise SourceError(error(self.display, "is a directory, not a file", FindingCode.NOT_A_FILE))
        except BaseException:
            if self.fd >= 0:
                os.close(self.fd)
            raise

    def _enter(self, fd: int, where: str) -> None:
        """Make ``fd`` the current directory once judged: only root may change its entries."""
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.where = fd, where
        st = os.fstat(fd)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, f"{where} is not a directory")
        if self.links_only:
            return
        problem = _judge(st, where)
        if problem:
            raise Untrusted(self.path, problem)
        self.shared = bool(st.st_mode & 0o022)  # sticky (else judged above): names of others may appear

    def _follow(self, link_fd: int, st: os.stat_result, shown: str) -> None:
        problem = _judge(st, shown)
        if problem:
            raise Untrusted(self.path, problem)
        self.links += 1
        if self.links > MAX_LINKS:
            raise OSError(errno.ELOOP, "too many symlinks")
        target = os.readlink("", dir_fd=link_fd)  # the very link judged, even where its directory is a user's
        self.todo = _parts(target) + self.todo
        if target.startswith("/"):
            self._enter(os.open("/", _PATH | os.O_DIRECTORY), "/")


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _up(where: str) -> str:
    return os.path.dirname(where.rstrip("/")) or "/"
