"""Root's ``pki`` commands and the staging area: used only when no other user could have changed it.

Root's ``pki`` commands run inside ``root_only``: first the staging area is judged (it and every
directory on the way root's and writable by root alone), or the command stops with a config error
before it reads or writes a thing. A user who could rename the staging area away and put its own in its
place would have root issue and bundle with that user's CA key, or write root's new CA key where that
user reads it. Every key and certificate root reads from it must be root's and not writable by others
(a file left from before a ``chown``); every file root writes is written through a descriptor of the
directory judged once more (``staged_dir``), so the write lands in the very directory judged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from sslreconciler.fsio import open_dir, read_source
from sslreconciler.model.errors import CommandError, ConfigError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.rootread import Untrusted, dir_for_root, judge_for_root

ROOT_STAGING = "/var/lib/sslreconciler-pki"  # the documented place: root's, beside (not in) the service's


@contextlib.contextmanager
def root_only(staging: Path, create: bool) -> Iterator[None]:
    """Run a pki command on ``staging``. As root: first a ConfigError (exit 2) naming the directory, the
    problem and the fix unless the staging area and every directory on its way are root's and writable
    by root alone (``create``, for init-ca: what is missing is made 0700, each judged in turn); and the
    same for a staged file found not root's alone while the command runs. Others' runs are not judged:
    a user's own staging area is that user's to keep."""
    try:
        if os.geteuid() == 0:
            os.close(_judged_dir(staging, create))
        yield
    except Untrusted as exc:
        raise ConfigError(staging, _advice(staging, exc)) from None


@contextlib.contextmanager
def staged_dir(staging: Path) -> Iterator[int]:
    """A descriptor of the staging area to write in; as root, of the directory judged once more."""
    fd = _judged_dir(staging, False) if os.geteuid() == 0 else open_dir(staging)
    try:
        yield fd
    finally:
        os.close(fd)


def _judged_dir(staging: Path, create: bool) -> int:
    try:
        return dir_for_root(staging, create)
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            made_by = f"`pki init-ca --staging {staging}` makes it"
            raise CommandError(f"{staging}: no such staging area ({made_by})") from None
        raise ConfigError(staging, f"the staging area {exc.finding.reason}") from None


def _advice(staging: Path, exc: Untrusted) -> str:
    why = (
        "root's pki commands use no staging area another user could change (it holds the CA key: that user "
        f"could swap in its own CA, or read root's new key): {exc.problem}; fix: "
    )
    if exc.entry == str(staging):
        return why + (
            f"check its files (another user could write them), then chown -R root:root {staging} && chmod 0700 "
            f"{staging}; or run the command as the user who owns it"
        )
    if exc.entry.startswith(f"{staging}/"):
        return why + (
            f"check it (another user could write it), then chown root:root {exc.entry} && chmod go-w {exc.entry}; "
            "or run the command as the user who owns it"
        )
    return why + (
        f"keep the staging area where only root can write every directory on the way, not below {exc.entry}: "
        f"install -d -o root -g root -m 0700 {ROOT_STAGING}, check the files, move them there and pass "
        f"--staging {ROOT_STAGING}; or run the command as the user who owns it"
    )


def read_staged(path: Path) -> bytes:
    """A staged file's bytes, confined to its directory; as root, one only root could have written
    (Untrusted otherwise, which ``root_only`` turns into a config error)."""
    if os.geteuid() == 0:
        judge_for_root(path, str(path))
    return read_source(path, str(path), [path.parent])[0]
