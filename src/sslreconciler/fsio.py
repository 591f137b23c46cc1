"""File I/O at the edge: anchored, bounded, hang-free reads and atomic writes.

Every operation on the ssl dir and the state dir works relative to a directory descriptor opened
once (``open_dir``): a name is looked up inside that directory, never re-resolved from the root, so
a directory or link swapped in by whoever owns the directory cannot redirect a privileged caller.

Reads open the name with ``O_PATH`` (which opens nothing: no FIFO blocks, no device wakes), check
the descriptor's type and real location, and only then reopen that same inode for reading, non-
blocking and size-capped. Writes go to a temp file created ``O_EXCL|O_NOFOLLOW`` in the directory
with its final mode (private material is never readable by others, not even for a moment), fsynced,
renamed over the target (which replaces a symlink rather than writing through it), and the directory
is fsynced so the rename survives a power cut. Modes and owners are changed on the descriptor that
was checked, never by name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from sslreconciler.model.findings import Finding, FindingCode, SourceError, error

MAX_SOURCE_BYTES = 1024 * 1024
# Every temp file this program creates starts with this, so watchers and clean-up can recognise them.
TEMP_PREFIX = ".sslreconciler-"
# The writer lock's file in the ssl dir (sslreconciler.writer_lock), and its candidates' temp names: a
# candidate is left alone by the temp-file sweep, a waiting writer may be about to swap it in.
LOCK_NAME = ".sslreconciler.lock"
LOCK_TEMP_PREFIX = f"{TEMP_PREFIX}{LOCK_NAME}."
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC


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
