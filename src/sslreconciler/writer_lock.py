"""One writer per ssl dir: a lock only root and the ssl dir's owner can hold.

The lock is ``flock`` on a lock file inside the ssl dir, ``.sslreconciler.lock``: a regular file of
mode 0600, owned by the ssl dir's owner, with one link. Every lock the kernel offers (``flock``
shared or exclusive, ``fcntl`` and OFD record locks, leases) needs a descriptor opened for reading or
writing, and only root and the file's owner can open a 0600 file; an ``O_PATH`` descriptor, which
anyone who can search the directory can get, takes no lock. So a user who cannot write the ssl dir
cannot hold the lock in any mode, and cannot make root wait. (Before, the lock was ``flock`` on the
0755 ssl dir's own descriptor, which any local user could open and hold.)

The name is looked at with ``O_PATH|O_NOFOLLOW`` (no link followed, no FIFO opened) and judged on
that descriptor; only a sound file (the above) is reopened, non-blocking, and locked. Anything else
at the name (a link, FIFO, directory, hard link, a file of another owner, or one with a looser mode
that someone may already hold open) is never used: a fresh lock file, 0600 and the owner's from its
first byte and already locked by us, is swapped in for it with ``renameat2(RENAME_EXCHANGE)``, and the
displaced entry is removed only if it is the one judged (another writer's new lock file is put back).
A new lock file appears with ``RENAME_NOREPLACE``. After locking, the name must still be that inode,
so a writer that locked a file just replaced or removed lets go and tries again.

The holder removes the lock file when it lets go (nothing stays in the ssl dir). A writer that is
neither root nor the owner is refused: it could not make a lock file the owner can open.

A forked child never holds the lock (a flock belongs to the open file: a worker outliving a killed
one-shot kept it). Right after a fork the child closes its copies of every held lock's descriptors,
which leaves the parent's flock held, and its ``release`` then does nothing (never unlinks the file).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import time
import weakref

from sslreconciler.fsio import LOCK_NAME, LOCK_TEMP_PREFIX, printable_name
from sslreconciler.model.errors import SslReconcilerError

WRITER_LOCK_WAIT_S = 120.0
_RETRY_S = 0.05
_ATTEMPTS = 8  # lookups per try before calling the name "busy" (it keeps changing under us)
_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_REOPEN = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC  # O_NONBLOCK: a lease cannot block it


class DirLocked(SslReconcilerError, OSError):
    """Another writer held the directory's lock for longer than we wait, or it cannot be taken."""


class WriterLock:
    """A held writer lock; ``release`` (or leaving the ``with``) removes the lock file and lets go."""

    def __init__(self, dir_fd: int, fd: int) -> None:
        self._dir_fd = os.dup(dir_fd)  # the caller may close its own descriptor first
        self._fd = fd  # -1: a read-only file system, where nothing is written and nobody is kept out
        _HELD.add(self)

    def _forget_in_child(self) -> None:
        """In a forked child: close our copies (the parent keeps its flock), hold and remove nothing."""
        for fd in (fd for fd in (self._fd, self._dir_fd) if fd >= 0):
            os.close(fd)
        self._fd = self._dir_fd = -1

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                if _same_file(self._dir_fd, self._fd):  # only our own lock file, never a link or another file
                    os.unlink(LOCK_NAME, dir_fd=self._dir_fd)
            os.close(self._fd)  # closing lets go of the lock (a waiter then sees the name gone: tries again)
            self._fd = -1
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


_HELD: weakref.WeakSet[WriterLock] = weakref.WeakSet()


def _close_held_in_child() -> None:
    for held in list(_HELD):
        held._forget_in_child()


os.register_at_fork(after_in_child=_close_held_in_child)


def lock_for_writing(dir_fd: int, display: str, wait_s: float = WRITER_LOCK_WAIT_S) -> WriterLock:
    """The ssl dir's writer lock, waiting at most ``wait_s``; DirLocked naming the holder after that."""
    deadline = time.monotonic() + wait_s
    while True:
        held = try_lock_for_writing(dir_fd, display)
        if held is not None:
            return held
        if time.monotonic() >= deadline:
            holder = lock_holder(dir_fd)
            raise DirLocked(
                errno.EWOULDBLOCK,
                "another sslreconciler (the daemon, or a one-shot command) is writing here"
                + (f" ({holder})" if holder else "")
                + f"; waited {wait_s:.0f} s",
                display,
            )
        time.sleep(_RETRY_S)


def try_lock_for_writing(dir_fd: int, display: str) -> WriterLock | None:
    """The writer lock if it is free now, else None: never waits, never blocks."""
    dir_st = os.fstat(dir_fd)
    euid = os.geteuid()
    if euid not in (0, dir_st.st_uid):
        raise DirLocked(
            errno.EACCES,
            f"only root and the directory's owner (uid {dir_st.st_uid}) write here, and the writer lock is"
            f" theirs alone; this is uid {euid}",
            display,
        )
    for _ in range(_ATTEMPTS):
        try:
            path_fd = os.open(LOCK_NAME, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            fd = _place_new(dir_fd, dir_st, display, None)
        else:
            try:
                st = os.fstat(path_fd)  # the entry itself: a link or FIFO is looked at, not followed or opened
                if _is_sound(st, dir_st):
                    fd = _open_and_lock(path_fd, st)
                    if fd is None:
                        return None  # held by another writer
                else:
                    fd = _place_new(dir_fd, dir_st, display, st)
            finally:
                os.close(path_fd)  # kept open until here, so the inode judged cannot be reused meanwhile
        if fd == _READ_ONLY:
            return WriterLock(dir_fd, -1)
        if fd is not None:
            if _same_file(dir_fd, fd):
                return WriterLock(dir_fd, fd)
            os.close(fd)  # locked a lock file that was replaced or removed meanwhile: look again
    return None


def lock_holder(dir_fd: int) -> str:
    """Who holds the lock file's flock, from /proc/locks: "pid N, NAME"; empty when unknown."""
    try:
        st = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return ""
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", "rb") as f:  # a kernel file: bounded all the same
            table = f.read(1024 * 1024).decode(errors="replace")
    except OSError:
        return ""
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where and fields[4].isdigit():
            pid = fields[4]
            try:
                with open(f"/proc/{pid}/comm", "rb") as f:
                    name = f.read(64).decode(errors="replace").strip()
            except OSError:
                name = ""
            return f"pid {pid}" + (f", {printable_name(name)}" if name else "")
    return ""


_READ_ONLY = -2  # _place_new: the file system is read-only


def _is_sound(st: os.stat_result, dir_st: os.stat_result) -> bool:
    """A lock file nobody but root and the owner can have open: regular, one link, the owner's, 0600."""
    return (
        stat.S_ISREG(st.st_mode)
        and st.st_nlink == 1
        and st.st_uid == dir_st.st_uid
        and stat.S_IMODE(st.st_mode) == 0o600
    )


def _same_file(dir_fd: int, fd: int) -> bool:
    """Is the name still the inode behind ``fd``, and that inode still sound?"""
    st = os.fstat(fd)
    try:
        now = os.stat(LOCK_NAME, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) and st.st_nlink == 1


def _open_and_lock(path_fd: int, st: os.stat_result) -> int | None:
    """The very inode judged, opened for reading and flocked; None when another writer holds it."""
    try:
        fd = os.open(f"/proc/self/fd/{path_fd}", _REOPEN)
    except (BlockingIOError, PermissionError):  # a lease being broken, or mid-change: busy for now
        return None
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise BlockingIOError
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _place_new(dir_fd: int, dir_st: os.stat_result, display: str, replacing: os.stat_result | None) -> int | None:
    """A fresh lock file, locked, put at the name (in place of ``replacing``, the unsound entry judged);
    its descriptor, None when another writer got there first, _READ_ONLY on a read-only file system."""
    tmp = f"{LOCK_TEMP_PREFIX}{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.EROFS:
            return _READ_ONLY
        reason = f"cannot make the writer lock {LOCK_NAME}: {exc.strerror}"
        raise DirLocked(exc.errno or errno.EIO, reason, display) from None
    placed = False
    try:
        os.fchmod(fd, 0o600)  # the umask can only have taken bits away; never readable by others
        if os.geteuid() == 0 and dir_st.st_uid != 0:
            os.fchown(fd, dir_st.st_uid, dir_st.st_gid)  # the owner's, so the owner's daemon can take it too
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else can open it: never busy
        if replacing is None:
            placed = _rename2(dir_fd, tmp, _RENAME_NOREPLACE)
        elif _rename2(dir_fd, tmp, _RENAME_EXCHANGE):
            displaced = os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False)
            if (displaced.st_dev, displaced.st_ino) == (replacing.st_dev, replacing.st_ino):
                _discard(dir_fd, tmp)
                placed = True
            else:  # another writer's new lock file: put it back, ours goes
                _rename2(dir_fd, tmp, _RENAME_EXCHANGE)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if placed:
        return fd
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp, dir_fd=dir_fd)
    return None


def _discard(dir_fd: int, name: str) -> None:
    """Remove what was displaced from the lock's name (never followed: unlink removes the link itself)."""
    try:
        os.unlink(name, dir_fd=dir_fd)
    except IsADirectoryError:
        with contextlib.suppress(OSError):
            os.rmdir(name, dir_fd=dir_fd)  # a non-empty one stays under its temp name: the owner's to clear
    except OSError:
        pass


_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    _renameat2.restype = ctypes.c_int


def _rename2(dir_fd: int, tmp: str, flags: int) -> bool:
    """renameat2(tmp -> LOCK_NAME, flags) in one directory; False when the name was taken (NOREPLACE) or
    is gone (EXCHANGE). Where the C library or the file system lacks it: link (NOREPLACE) or a plain
    rename (EXCHANGE, without the check of what was displaced)."""
    if _renameat2 is not None:
        if _renameat2(dir_fd, tmp.encode(), dir_fd, LOCK_NAME.encode(), flags) == 0:
            return True
        err = ctypes.get_errno()
        if err in (errno.EEXIST, errno.ENOENT):
            return False
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), LOCK_NAME)
    if flags == _RENAME_NOREPLACE:
        try:
            os.link(tmp, LOCK_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            return False
        os.unlink(tmp, dir_fd=dir_fd)
        return True
    os.rename(tmp, LOCK_NAME, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return False  # the displaced entry is gone already: nothing to check or put back
