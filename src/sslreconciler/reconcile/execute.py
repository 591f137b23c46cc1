"""Execute: carry out the steps ``decide`` chose, in order, and report which failed. No decisions here.

Every write is atomic and happens below the ssl dir's descriptor (fsio); a failed step is returned
as a ``StepFailed`` for ``settle`` to turn into a finding, never raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

from sslreconciler.fsio import (
    atomic_symlink_at,
    atomic_write_at,
    new_symlink_at,
    open_subdir,
    owner_for_new_files,
    remove_stale_temp_files,
    remove_versions_at,
    set_attributes_at,
    swap_set_at,
)
from sslreconciler.reconcile.memo import KnownStore, ReconcileCache, access_digest, store_spec
from sslreconciler.reconcile.state import HASH_LINK
from sslreconciler.reconcile.steps import (
    FixAttributes,
    MakeLink,
    RemoveLink,
    Step,
    StepFailed,
    SwapPemSet,
    WriteFile,
    WriteStore,
)
from sslreconciler.stores.jks import encode_jks
from sslreconciler.stores.pkcs12 import encode_pkcs12


def encode(step: WriteStore) -> bytes:
    if step.kind == "pkcs12":
        return encode_pkcs12(step.content.keys[0], step.password, step.profile)
    return encode_jks(step.content, step.password)


def _write(ssl_fd: int, step: WriteStore, memo: ReconcileCache | None) -> None:
    encoded = encode(step)
    dir_uid, dir_gid = owner_for_new_files(ssl_fd)
    uid = dir_uid if step.uid is None else step.uid
    gid = dir_gid if step.gid is None else step.gid
    atomic_write_at(ssl_fd, step.name, encoded, step.mode, uid, gid)
    if memo is not None:  # these bytes hold this content: the next no-op need not decode them
        digest = hashlib.sha256(encoded).digest()
        access = access_digest(step.kind, step.profile, step.password)
        memo.stores[step.path] = KnownStore(digest, access, step.content, step.profile)
        memo.remember_verified(step.path, digest, store_spec(step.kind, step.profile, step.password, step.content))


def _owner(ssl_fd: int, uid: int | None, gid: int | None) -> tuple[int | None, int | None]:
    dir_uid, dir_gid = owner_for_new_files(ssl_fd)
    return (dir_uid if uid is None else uid), (dir_gid if gid is None else gid)


def _in_link_dir(ssl_fd: int, directory: str, dirs: dict[str, int]) -> int:
    if directory not in dirs:
        dirs[directory] = open_subdir(ssl_fd, directory)
    return dirs[directory]


def execute(
    ssl_fd: int,
    steps: list[Step],
    link_dirs: tuple[str, ...] = (),
    memo: ReconcileCache | None = None,
    pem_dir: str | None = None,
) -> list[StepFailed]:
    """Run ``steps`` below ``ssl_fd``; the ones that failed, with why."""
    failures: list[StepFailed] = []
    remove_stale_temp_files(ssl_fd)  # temp files a killed run left
    if pem_dir is not None:
        with contextlib.suppress(OSError):
            remove_versions_at(ssl_fd, pem_dir)  # a half-made or replaced version of the PEM set
    dirs: dict[str, int] = {}
    owners: dict[int, tuple[int | None, int | None]] = {}  # a link directory's fd -> owner_for_new_files
    touched: set[str] = set()
    try:
        for directory in link_dirs:
            with contextlib.suppress(OSError):
                remove_stale_temp_files(_in_link_dir(ssl_fd, directory, dirs))  # temp links a killed run left
        for step in steps:
            try:
                if isinstance(step, WriteStore):
                    _write(ssl_fd, step, memo)
                elif isinstance(step, FixAttributes):
                    set_attributes_at(ssl_fd, step.name, step.observed, step.mode, step.uid, step.gid)
                elif isinstance(step, MakeLink | RemoveLink) and not HASH_LINK.match(step.name):
                    failures.append(StepFailed(step, "not a hash link name: left alone"))  # decide never asks it
                elif isinstance(step, MakeLink):
                    link_fd = _in_link_dir(ssl_fd, step.directory, dirs)
                    if step.fresh:  # nothing had the name: made in place (one call), the owner asked once
                        if link_fd not in owners:
                            owners[link_fd] = owner_for_new_files(link_fd)
                        new_symlink_at(link_fd, step.name, step.target, owners[link_fd])
                    else:
                        atomic_symlink_at(link_fd, step.name, step.target)
                    touched.add(step.directory)
                elif isinstance(step, WriteFile):
                    atomic_write_at(ssl_fd, step.name, step.data, step.mode, *_owner(ssl_fd, step.uid, step.gid))
                elif isinstance(step, SwapPemSet):
                    swap_set_at(ssl_fd, step.directory, list(step.files), *_owner(ssl_fd, step.uid, step.gid))
                elif isinstance(step, RemoveLink):
                    with contextlib.suppress(FileNotFoundError):  # already gone: as good as removed
                        os.unlink(step.name, dir_fd=_in_link_dir(ssl_fd, step.directory, dirs))
                    touched.add(step.directory)
            except OSError as exc:
                failures.append(StepFailed(step, exc.strerror or type(exc).__name__))
        for directory in touched:
            with contextlib.suppress(OSError):
                os.fsync(dirs[directory])
    finally:
        for fd in dirs.values():
            os.close(fd)
    return failures
