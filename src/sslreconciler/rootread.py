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

The same walk judges a directory root writes into (``dir_for_root``: the ``pki`` staging area, which
holds the CA key; there the directory itself must be writable by root alone, sticky or not, since
another user adding a name there would add a CA) and a file root executes or reads by its own means
(``judge_for_root``: a hook's ``argv[0]``, a staged key or certificate), judged as a file read is.

Only root's reads are judged: a user reading files only it (or root) can write gains nothing, and
umask 002 systems make a user's files group-writable by that user's own group.

``open_dir_for_root`` walks the same way to a directory root writes in that is not its own (the ACME
webroot, www-data's): there only the symlinks are judged. The directories may be anyone's (what root
writes there belongs to their owner anyway), but a link another user owns could send root to write in
any directory of the system.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sslreconciler.fsio import IsADirectory, open_dir, read_at, read_regular
from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.findings import FindingCode, SourceError, error

MAX_LINKS = 40  # as the kernel's ELOOP limit
_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class Untrusted(SslReconcilerError):
    """A file root would act on could have been written by another user; ``problem`` says how, and
    ``entry`` is the file, directory or link on the way that is at fault."""

    def __init__(self, path: Path | str, problem: str, entry: str | None = None) -> None:
        self.path = str(path)
        self.problem = problem
        self.entry = entry or self.path
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
    dir_fd, name, shared = _walk_to_file(path, display)
    try:
        data, st = read_at(dir_fd, name, display, None, limit, allow_empty)
    finally:
        os.close(dir_fd)
    _judge_file(st, path, display, shared)
    return data


def judge_for_root(path: Path, display: str) -> None:
    """Judge the file ``path`` (links followed) that root is about to execute (a hook's program) or read
    by its own means (a staged key), as ``read_for_root`` judges a file it reads, without reading it:
    Untrusted when any user but root could have written it or anything on the way to it; SourceError
    when it is missing or not a regular file. The caller checks the euid: others are not judged."""
    dir_fd, name, shared = _walk_to_file(path, display)
    try:
        inner = os.open(name, _PATH, dir_fd=dir_fd)  # the walk followed every link: a link here is new
    except FileNotFoundError:
        raise SourceError(error(display, "is missing", FindingCode.MISSING)) from None
    finally:
        os.close(dir_fd)
    try:
        st = os.fstat(inner)
    finally:
        os.close(inner)
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(error(display, "is not a regular file", FindingCode.NOT_A_FILE))
    _judge_file(st, path, display, shared)


def dir_for_root(path: Path, create: bool = False) -> int:
    """A descriptor (``O_RDONLY``) of the directory ``path`` once it and every directory and link on
    the way from ``/`` are root's and only root may change them, the directory itself writable by root
    alone (no sticky exception: a name another user adds there is a file root would use). ``create``
    makes missing directories 0700 on the way, each inside its judged parent and judged in turn.

    Untrusted, SourceError (missing, not a directory) or OSError. Root's runs only: the caller checks."""
    walk = _Walk(str(path), str(path))
    try:
        fd = walk.to_dir(create)
    except OSError as exc:
        raise SourceError(error(str(path), f"cannot be resolved: {exc.strerror}", FindingCode.UNREADABLE)) from None
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o022:
            who = "group and others" if st.st_mode & 0o022 == 0o022 else "group" if st.st_mode & 0o020 else "others"
            shown = f"directory {walk.where} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
            raise Untrusted(path, shown, walk.where)
        return os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)  # the very directory judged
    finally:
        os.close(fd)


def _walk_to_file(path: Path, display: str) -> tuple[int, str, bool]:
    try:
        return _Walk(str(path), display).to_file()
    except OSError as exc:
        raise SourceError(error(display, f"cannot be resolved: {exc.strerror}", FindingCode.UNREADABLE)) from None


def _judge_file(st: os.stat_result, path: Path, display: str, shared: bool) -> None:
    problem = _judge(st, display)
    if not problem and shared and st.st_nlink > 1:  # a hard link another user made in a sticky directory
        problem = f"file {display} has {st.st_nlink} hard links, in a directory others may write"
    if problem:
        raise Untrusted(path, problem)


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


def open_ssl_dir(path: Path | str) -> int:
    """A descriptor (``O_RDONLY``) of the ssl dir every writer works inside. As root, reached only through
    symlinks root owns (its own last component never a link another user made): a user owning a
    directory on the way, such as sipx's home ``/etc/sipxpbx``, must not send root's writes into a
    directory of its choosing. The directories may be anyone's: what root writes there belongs to
    their owner. OSError in every case (EPERM naming the link), as ``fsio.open_dir`` raises."""
    if os.geteuid() != 0:
        return open_dir(path)
    try:
        return open_dir_for_root(Path(path), os.O_RDONLY | os.O_NONBLOCK)
    except Untrusted as exc:
        raise OSError(errno.EPERM, f"reached through {exc.problem}; root follows no link another user owns") from None
    except SourceError as exc:
        raise OSError(errno.ENOENT, exc.finding.reason) from None


@contextlib.contextmanager
def opened_ssl_dir(path: Path | str) -> Iterator[int]:
    """``open_ssl_dir``, closed after."""
    fd = open_ssl_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


class _Walk:
    """From ``/`` to the directory holding the file, one judged component at a time (``links_only``: the
    symlinks followed are judged, the directories not)."""

    def __init__(self, path: str, display: str, links_only: bool = False) -> None:
        self.path, self.display, self.links_only = path, display, links_only
        absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        self.todo = _parts(absolute)
        self.fd, self.where, self.shared = -1, "/", False
        self.links = 0
        self.after_link = -1  # how many parts followed the last link followed: the rest is its target

    def to_file(self) -> tuple[int, str, bool]:
        """The descriptor of the judged directory holding the file, the file's name in it, and whether
        that directory is one others may add names to (sticky). Untrusted, SourceError or OSError."""
        name = self._walk(to_file=True, create=False)
        if name is None:
            raise IsADirectory(error(self.display, "is a directory, not a file", FindingCode.NOT_A_FILE))
        return self.fd, name, self.shared

    def to_dir(self, create: bool) -> int:
        """The (``O_PATH``) descriptor of the judged directory itself; ``create``: see dir_for_root."""
        self._walk(to_file=False, create=create)
        return self.fd

    def _walk(self, to_file: bool, create: bool) -> str | None:
        """Judge each component; with ``to_file``, stop before the last one and return its name."""
        try:
            self._enter(os.open("/", _PATH | os.O_DIRECTORY), "/")
            while self.todo:
                part = self.todo.pop(0)
                if part == "..":
                    self._enter(os.open("..", _PATH | os.O_DIRECTORY, dir_fd=self.fd), _up(self.where))
                    continue
                shown = os.path.join(self.where, part)
                inner = self._open(part, create)
                st = os.fstat(inner)
                if stat.S_ISLNK(st.st_mode):
                    try:
                        self._follow(inner, st, shown)
                    finally:
                        os.close(inner)
                elif to_file and not self.todo:  # the file itself: read_at opens it again inside fd, refusing a link
                    os.close(inner)
                    return part
                else:
                    self._enter(inner, shown)
            return None
        except BaseException:
            if self.fd >= 0:
                os.close(self.fd)
            raise

    def _open(self, part: str, create: bool) -> int:
        """``part`` in the current (judged) directory, made 0700 first when missing and ``create``."""
        try:
            return os.open(part, _PATH, dir_fd=self.fd)
        except FileNotFoundError:
            if not create:
                dangling = self.links and len(self.todo) >= self.after_link  # missing in a link's target
                gone = ("is a dangling symlink", FindingCode.DANGLING_SYMLINK) if dangling else None
                raise SourceError(error(self.display, *(gone or ("is missing", FindingCode.MISSING)))) from None
        with contextlib.suppress(FileExistsError):  # made meanwhile: whoever made it, it is judged next
            os.mkdir(part, 0o700, dir_fd=self.fd)
        return os.open(part, _PATH, dir_fd=self.fd)

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
            raise Untrusted(self.path, problem, where)
        self.shared = bool(st.st_mode & 0o022)  # sticky (else judged above): names of others may appear

    def _follow(self, link_fd: int, st: os.stat_result, shown: str) -> None:
        problem = _judge(st, shown)
        if problem:
            raise Untrusted(self.path, problem, shown)
        self.links += 1
        if self.links > MAX_LINKS:
            raise OSError(errno.ELOOP, "too many symlinks")
        target = os.readlink("", dir_fd=link_fd)  # the very link judged, even where its directory is a user's
        self.after_link = len(self.todo)
        self.todo = _parts(target) + self.todo
        if target.startswith("/"):
            self._enter(os.open("/", _PATH | os.O_DIRECTORY), "/")


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def _up(where: str) -> str:
    return os.path.dirname(where.rstrip("/")) or "/"
