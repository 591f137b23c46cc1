"""Anchored, bounded, hang-free reads, and listing a directory (see the package's docstring).

Reads open the name with ``O_PATH`` (which opens nothing: no FIFO blocks, no device wakes), check
the descriptor's type and real location, and only then reopen that same inode for reading, non-
blocking and size-capped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from sslreconciler.model.findings import Finding, FindingCode, SourceError, error

MAX_SOURCE_BYTES = 1024 * 1024
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC


class IsADirectory(SourceError):
    """A directory where a regular file is expected (code not-a-file): a caller reading a file of its
    own configuration words this one for its kind of file, by type rather than by the reason's text."""


def _is_within(path: Path | str, root: Path | str) -> bool:
    """Both absolute and normal (the kernel's or realpath's answer): compared as strings, no Path parsing."""
    path, root = str(path), str(root).rstrip("/") or "/"
    return path == root or path.startswith(root if root == "/" else root + "/")


def fd_path(fd: int) -> Path:
    """Where the file behind ``fd`` really is (the kernel's answer, not a re-resolved name)."""
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


def open_dir(path: Path | str) -> int:
    """A descriptor of the directory ``path`` (the path is the caller's own configuration)."""
    return os.open(path, _DIR)


def open_subdir(dir_fd: int, rel: str) -> int:
    """A descriptor of ``rel`` below ``dir_fd``, every component a real directory, never a symlink.

    OSError (ELOOP, ENOTDIR, ENOENT ...) otherwise: nothing is followed out of the directory.
    """
    fd = os.dup(dir_fd)
    try:
        for part in PurePosixPath(rel).parts:
            if part in ("", "."):
                continue
            if part in ("..", "/"):
                raise OSError(errno.EPERM, "leaves the directory", rel)
            inner = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_dir(path: Path | str) -> Iterator[int]:
    fd = open_dir(path)
    try:
        yield fd
    finally:
        os.close(fd)


def resolve_source(path: Path, display: str, allowed_roots: Iterable[Path]) -> Path:
    """The real path behind ``path``, refusing a symlink that leads outside ``allowed_roots``."""
    fd, _ = _open_path(str(path), display, None, [Path(os.path.realpath(r)) for r in allowed_roots])
    try:
        return fd_path(fd)
    finally:
        os.close(fd)


def _kind_of(mode: int) -> str | None:
    """A phrase for anything that is not a regular file, None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if stat.S_ISLNK(mode):
        return "is a symlink, and links are not followed here"
    return "is not a regular file"


def _is_link(name: str, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_path(name: str, display: str, dir_fd: int | None, allowed: list[Path] | None) -> tuple[int, os.stat_result]:
    """An O_PATH descriptor of a regular file at ``name``, and its stat; SourceError otherwise.

    ``allowed`` None: a symlink is refused outright. Else links are followed, and the file must
    really lie inside one of ``allowed`` (checked on the descriptor, so a swap cannot cheat it).
    """
    flags = os.O_PATH | os.O_CLOEXEC | (os.O_NOFOLLOW if allowed is None else 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        if _is_link(name, dir_fd):
            raise SourceError(error(display, "is a dangling symlink", FindingCode.DANGLING_SYMLINK)) from None
        raise SourceError(error(display, "is missing", FindingCode.MISSING)) from None
    except PermissionError:
        raise SourceError(error(display, "cannot be read: permission denied", FindingCode.UNREADABLE)) from None
    except OSError as exc:
        raise SourceError(error(display, f"cannot be resolved: {exc.strerror}", FindingCode.UNREADABLE)) from None
    try:
        st = os.fstat(fd)
        if allowed is not None:
            real = os.readlink(f"/proc/self/fd/{fd}")
            if not any(_is_within(real, root) for root in allowed):
                raise SourceError(
                    error(display, f"is a symlink to {real}, outside the allowed places", FindingCode.SYMLINK_ESCAPE)
                )
        kind = _kind_of(st.st_mode)
        if kind and stat.S_ISDIR(st.st_mode):
            raise IsADirectory(error(display, kind, FindingCode.NOT_A_FILE))
        if kind:
            code = FindingCode.SYMLINK if stat.S_ISLNK(st.st_mode) else FindingCode.NOT_A_FILE
            raise SourceError(error(display, kind, code))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _read_fd(fd: int, display: str, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(65536, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise SourceError(error(display, f"grew over the {limit}-byte limit while read", FindingCode.TOO_LARGE))
    return b"".join(chunks)


def read_at(
    dir_fd: int | None,
    name: str,
    display: str,
    allowed: list[Path] | None = None,
    limit: int = MAX_SOURCE_BYTES,
    allow_empty: bool = False,
) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file ``name`` (relative to ``dir_fd``) and its stat, bounded.

    A FIFO, device, socket or directory is refused before it is opened for reading; a file over
    ``limit`` is refused by its size and again if it grows while read. ``allowed``: see _open_path.
    """
    path_fd, st = _open_path(name, display, dir_fd, allowed)
    try:
        if st.st_size > limit:
            raise SourceError(
                error(display, f"is {st.st_size} bytes, over the {limit}-byte limit", FindingCode.TOO_LARGE)
            )
        try:
            fd = os.open(f"/proc/self/fd/{path_fd}", _READ)  # the very inode checked above
        except PermissionError:
            raise SourceError(error(display, "cannot be read: permission denied", FindingCode.UNREADABLE)) from None
        except OSError as exc:
            raise SourceError(error(display, f"cannot be read: {exc.strerror}", FindingCode.UNREADABLE)) from None
    finally:
        os.close(path_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise SourceError(error(display, "changed while it was opened", FindingCode.UNREADABLE))
        data = _read_fd(fd, display, limit)
    except OSError as exc:
        raise SourceError(error(display, f"cannot be read: {exc.strerror}", FindingCode.UNREADABLE)) from None
    finally:
        os.close(fd)
    if not allow_empty and not data.strip():
        raise SourceError(error(display, "is empty", FindingCode.EMPTY))
    return data, now


def read_source(
    path: Path, display: str, allowed_roots: Iterable[Path], limit: int = MAX_SOURCE_BYTES
) -> tuple[bytes, os.stat_result]:
    """The bytes of a source file and its stat, or a SourceError naming the file and the reason."""
    roots = [Path(os.path.realpath(r)) for r in allowed_roots]
    return read_at(None, str(path), display, roots, limit)


def read_regular(path: Path, display: str, limit: int, allow_empty: bool = True) -> bytes:
    """A configuration file the caller names itself (links followed): regular, bounded, non-blocking."""
    return read_at(None, str(path), display, [Path("/")], limit, allow_empty)[0]


def written_by_others(st: os.stat_result, what: str) -> str:
    """Why a record could have been written by someone other than this user; empty when it could not.

    A record the running user acts on (root above all) is believed only when that user owns it and
    neither group nor others may write it."""
    me = os.geteuid()
    if st.st_uid != me:
        return f"{what} is owned by uid {st.st_uid}, not by this user (uid {me})"
    if st.st_mode & 0o022:
        return f"{what} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return ""


def printable_name(name: str) -> str:
    """A directory entry's name for messages; names that are not UTF-8 shown with \\x escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_names(dir_fd: int, where: str) -> tuple[list[str], list[Finding]]:
    """The UTF-8 names in a directory, sorted; a finding for each name that is not UTF-8 (left out)."""
    names, problems = [], []
    for name in os.listdir(dir_fd):
        if is_utf8_name(name):
            names.append(name)
        else:
            problems.append(
                error(
                    f"{where}/{printable_name(name)}",
                    "has a file name that is not UTF-8; left out",
                    FindingCode.BAD_NAME,
                )
            )
    return sorted(names), problems
