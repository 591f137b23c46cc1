"""Publishing the HTTP-01 answers of one order: token files in a webroot, or a listener of our own.

The webroot is written through directory descriptors, a symlink below it refused (whoever owns the
webroot must not steer where we write), the webroot itself opened without following a link in its last
component and, by root, reached only through root's own links; what root makes there belongs to the
webroot's owner, so the service user's own run can still write its tokens after root's. The listener is
listener.py's.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from acme import challenges

from sslreconciler.cluster.acme.listener import Http01Listener
from sslreconciler.cluster.acme.transport import AcmeFailure
from sslreconciler.config.desired import Acme
from sslreconciler.fsio import TEMP_PREFIX, owner_for_new_files
from sslreconciler.model.findings import SourceError
from sslreconciler.rootread import Untrusted, open_dir_for_root

CHALLENGE_DIR = Path(".well-known") / "acme-challenge"


class Responder:
    def __init__(self, acme: Acme) -> None:
        self.acme = acme
        self.dir_fd: int | None = None  # the challenge directory, opened without following links
        self.tokens: list[str] = []
        self.answers: dict[str, bytes] = {}
        self.listener: Http01Listener | None = None

    def add(self, chall: challenges.HTTP01, validation: str) -> None:
        token = chall.encode("token")
        webroot = self.acme.challenge.webroot
        if webroot is None:
            self.answers[token] = validation.encode()
            return
        try:
            if self.dir_fd is None:
                self.dir_fd = _challenge_dir(webroot)
            _write_at(self.dir_fd, token, validation.encode())
        except OSError as exc:
            raise AcmeFailure(
                "webroot", f"{webroot / CHALLENGE_DIR}: cannot write the challenge file: {exc.strerror}"
            ) from None
        self.tokens.append(token)

    def start(self) -> None:
        listen = self.acme.challenge.listen
        if listen is None:
            return
        host, _, port = listen.rpartition(":")
        try:
            self.listener = Http01Listener(host.strip("[]"), int(port), self.answers)
        except OSError as exc:
            raise AcmeFailure("listen", f"cannot listen on {listen} for HTTP-01: {exc.strerror}") from None
        self.listener.start()

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        if self.dir_fd is not None:
            for token in self.tokens:
                with contextlib.suppress(OSError):
                    os.unlink(token, dir_fd=self.dir_fd)
            os.close(self.dir_fd)
            self.dir_fd = None


def _open_webroot(webroot: Path) -> int:
    """The webroot, never through a link in its last component; as root, only through root's own links
    (rootread.open_dir_for_root): a link the service user owns could send root's writes anywhere."""
    try:
        return open_dir_for_root(webroot, os.O_RDONLY)
    except Untrusted as exc:
        raise AcmeFailure(
            "webroot",
            f"{webroot}: reached through a symlink another user owns ({exc.problem}): root does not write "
            "through it; name the real directory as acme.challenge.webroot, or make the link root's",
        ) from None
    except SourceError:  # missing (or a root link to nothing): said as for anyone else
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AcmeFailure("webroot", f"{webroot}: is a symlink; name the real directory") from None
        raise


def _challenge_dir(webroot: Path) -> int:
    """WEBROOT/.well-known/acme-challenge opened component by component, made when missing (then
    given to the owner of the directory it is made in); a symlink at or below the webroot is refused."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    fd = _open_webroot(webroot)
    try:
        for part in CHALLENGE_DIR.parts:
            made = False
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            try:
                child = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise AcmeFailure("webroot", f"{webroot}: {part} is a symlink or not a directory") from None
                raise
            uid, gid = owner_for_new_files(fd)
            if made and uid is not None and os.fstat(child).st_uid == os.geteuid():  # the one we made
                os.fchown(child, uid, -1 if gid is None else gid)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Atomically write ``name`` (0644: the web server reads it) in the directory ``dir_fd``."""
    tmp = f"{TEMP_PREFIX}{name}.tmp"
    with contextlib.suppress(FileNotFoundError):  # a leftover (or a planted hard link) is never written into
        os.unlink(tmp, dir_fd=dir_fd)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        os.fchmod(fd, 0o644)
        uid, gid = owner_for_new_files(dir_fd)
        if uid is not None:
            os.fchown(fd, uid, -1 if gid is None else gid)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
