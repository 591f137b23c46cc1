"""File I/O at the edge: bounded, hang-free source reads and atomic writes.

Reads refuse anything but a regular file (a FIFO would block, a device could be huge or have side
effects) and symlinks that leave the allowed places. Writes go to a temp file in the target's own
directory, created with its final mode (private material is never readable by others, not even for a
moment), fsynced, renamed over the target (which replaces a symlink rather than writing through it),
and the directory is fsynced so the rename survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

from sslreconciler.findings import SourceError, error

MAX_SOURCE_BYTES = 1024 * 1024
# Every temp file this program creates starts with this, so watchers and clean-up can recognise them.
TEMP_PREFIX = ".sslreconciler-"


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_source(path: Path, display: str, allowed_roots: Iterable[Path]) -> Path:
    """The real path behind ``path``, refusing a symlink that leads outside ``allowed_roots``."""
    try:
        real = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:
        if os.path.islink(path):
            raise SourceError(error(display, "is a dangling symlink", "dangling-symlink")) from None
        raise SourceError(error(display, "is missing", "missing")) from None
    except OSError as exc:
        raise SourceError(error(display, f"cannot be resolved: {exc.strerror}", "unreadable")) from None
    roots = [Path(os.path.realpath(r)) for r in allowed_roots]
    if not any(_is_within(real, root) for root in roots):
        raise SourceError(error(display, f"is a symlink to {real}, outside the allowed places", "symlink-escape"))
    return real


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
    return "is not a regular file"


def read_source(
    path: Path, display: str, allowed_roots: Iterable[Path], limit: int = MAX_SOURCE_BYTES
) -> tuple[bytes, os.stat_result]:
    """The bytes of a source file and its stat, or a SourceError naming the file and the reason."""
    real = resolve_source(path, display, allowed_roots)
    try:
        st = os.stat(real)
        kind = _kind_of(st.st_mode)
        if kind:
            raise SourceError(error(display, kind, "not-a-file"))
        if st.st_size > limit:
            raise SourceError(error(display, f"is {st.st_size} bytes, over the {limit}-byte limit", "too-large"))
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(real, flags)
    except PermissionError:
        raise SourceError(error(display, "cannot be read: permission denied", "unreadable")) from None
    except FileNotFoundError:
        raise SourceError(error(display, "is missing", "missing")) from None
    except SourceError:
        raise
    except OSError as exc:
        raise SourceError(error(display, f"cannot be read: {exc.strerror}", "unreadable")) from None
    try:
        st = os.fstat(fd)  # the file may have been swapped between stat and open
        kind = _kind_of(st.st_mode)
        if kind:
            raise SourceError(error(display, kind, "not-a-file"))
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise SourceError(error(display, f"cannot be read: {exc.strerror}", "unreadable")) from None
    finally:
        os.close(fd)
    if total > limit:
        raise SourceError(error(display, f"grew over the {limit}-byte limit while read", "too-large"))
    data = b"".join(chunks)
    if not data.strip():
        raise SourceError(error(display, "is empty", "empty"))
    return data, st


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_path(target: Path) -> Path:
    return target.with_name(f"{TEMP_PREFIX}{target.name}.{secrets.token_hex(4)}.tmp")


def atomic_write(target: Path, data: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Replace ``target`` with ``data`` so that readers see the old file or the new, never a part."""
    tmp = _temp_path(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
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
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_symlink(target: Path, points_to: str) -> None:
    """Make ``target`` a symlink to ``points_to``, replacing whatever was there in one rename."""
    tmp = _temp_path(target)
    os.symlink(points_to, tmp)
    try:
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_stale_temp_files(directory: Path) -> list[str]:
    """Remove temp files an interrupted run left behind; the names of those removed."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if name.startswith(TEMP_PREFIX) and name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(directory / name)
                removed.append(name)
    return removed
