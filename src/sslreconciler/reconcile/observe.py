"""Observe: read everything a reconcile needs, once, into one plain value (``Observed``) for ``decide``.

Sources (bytes, mode, the mtime seen), the trust directories' listings, each store's password, what
every output path holds now (bytes, never decoded here), each trust directory's hash links, and the
owner and group the desired state names, resolved to ids. Nothing here judges; a problem reading
something becomes a finding or a field saying why, never an exception.
"""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import stat
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from sslreconciler.config.desired import DesiredState, PasswordSource, Permissions, resolve_password
from sslreconciler.config.hook_programs import hook_program_findings
from sslreconciler.fsio import TEMP_PREFIX, current_version_at, fd_path, list_names, lstat_at, open_subdir, read_at
from sslreconciler.model.findings import Finding, FindingCode, SourceError, error
from sslreconciler.reconcile.file_facts import policy_key
from sslreconciler.reconcile.stat_index import StatIndex, stat_key
from sslreconciler.reconcile.state import (
    HASH_LINK,
    Inputs,
    LinkDir,
    Observed,
    OutputFile,
    Ownership,
    PemObserved,
    SourceFile,
    TrustDir,
)
from sslreconciler.reconcile.system_trust_read import read_system_trust
from sslreconciler.rootread import open_ssl_dir

TRUST_SUFFIXES = (".crt", ".pem", ".cer", ".der")
Indexed = tuple[StatIndex, tuple[str, ...]]  # the stat index and the policy in force


def read_file(ssl_fd: int, rel: str, allowed: list[Path], index: Indexed | None = None) -> SourceFile:
    """A source below the ssl dir's descriptor; links are followed only to where ``allowed`` says.

    ``index`` (trust files): a regular file the stat index proves unchanged is not read: its recorded
    facts stand in for its bytes; any other is read and its stat kept for the next index."""
    try:
        there = lstat_at(ssl_fd, rel)
    except OSError:
        there = None
    if there is None:
        return SourceFile(rel, present=False)
    regular = stat.S_ISREG(there.st_mode)
    if index is not None and regular and (known := index[0].lookup(rel, there, index[1])) is not None:
        return SourceFile(
            rel, mode=stat.S_IMODE(there.st_mode), mtime=there.st_mtime, stat=stat_key(there), facts=known
        )
    try:
        data, st = read_at(ssl_fd, rel, rel, allowed)
    except SourceError as exc:
        return SourceFile(rel, problem=exc.finding, mtime=there.st_mtime)
    kept = stat_key(st) if index is not None and regular else None  # a link is always read in full
    return SourceFile(rel, data=data, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime, stat=kept)


def is_trust_file_name(name: str) -> bool:
    return (
        not name.startswith(".")
        and not name.startswith(TEMP_PREFIX)
        and name.lower().endswith(TRUST_SUFFIXES)
        and not HASH_LINK.match(name)
    )


def _list_trust_source(ssl_fd: int, rel: str, allowed: list[Path]) -> tuple[TrustDir, list[Finding]]:
    """The certificate files of a trust source; a directory is listed through its own descriptor."""
    try:
        there = lstat_at(ssl_fd, rel)
    except OSError as exc:
        return TrustDir(rel, (), False), [error(rel, f"cannot be looked at: {exc.strerror}", FindingCode.UNREADABLE)]
    if there is None:
        return TrustDir(rel, (), False), [
            error(rel, "is missing: no trusted certificates to verify against", FindingCode.MISSING)
        ]
    try:
        fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=ssl_fd)
    except NotADirectoryError:
        return TrustDir(rel, (rel,), False), []  # a single file (its read says if it is usable)
    except OSError as exc:
        return TrustDir(rel, (), True), [error(rel, f"cannot be listed: {exc.strerror}", FindingCode.UNREADABLE)]
    try:
        real = fd_path(fd)
        if not any(real == root or root in real.parents for root in allowed):
            problem = error(rel, f"is a symlink to {real}, outside the allowed places", FindingCode.SYMLINK_ESCAPE)
            return TrustDir(rel, (), True), [problem]
        names, problems = list_names(fd, rel.rstrip("/"))
    except OSError as exc:
        return TrustDir(rel, (), True), [error(rel, f"cannot be listed: {exc.strerror}", FindingCode.UNREADABLE)]
    finally:
        os.close(fd)
    files = tuple(f"{rel.rstrip('/')}/{n}" for n in names if is_trust_file_name(n))
    return TrustDir(rel, files, True), problems


def _password(source: PasswordSource, name: str, inputs: Inputs) -> None:
    try:
        inputs.passwords[name] = resolve_password(source)
    except ValueError as exc:
        inputs.password_problems[name] = error(name, f"no store password: {exc}", FindingCode.PASSWORD)


def gather_inputs(
    ssl_dir: Path, desired: DesiredState, ssl_fd: int | None = None, index: StatIndex | None = None
) -> tuple[Inputs, list[Finding]]:
    """Every source file's bytes (or why not), the trust files, and each store's password.

    ``index``: trust files it proves unchanged come as their recorded facts; None reads every file, and
    keeps no stat (no index is made from such a run: webcert's and tests' callers)."""
    if ssl_fd is None:
        ssl_fd = open_ssl_dir(ssl_dir)
        try:
            return gather_inputs(ssl_dir, desired, ssl_fd, index)
        finally:
            os.close(ssl_fd)
    # The ssl dir is where its descriptor really is, resolved once; links may lead there or to the
    # allowed directories, nowhere else.
    allowed = [fd_path(ssl_fd), *(Path(os.path.realpath(d)) for d in desired.allowed_symlink_dirs)]
    inputs = Inputs(stat_taken_ns=time.time_ns() if index is not None else 0)  # before any stat: the racy rule's
    indexed = (index, policy_key(desired.policy.lowered)) if index is not None else None
    findings: list[Finding] = []
    for rel in desired.source_files():
        inputs.files[rel] = read_file(ssl_fd, rel, allowed)
    for pair in desired.pairs:
        for out in (pair.keystore, pair.pkcs12):
            if out:
                _password(pair.password or desired.password, out, inputs)
    for rel in desired.trust_sources():
        trust_dir, problems = _list_trust_source(ssl_fd, rel, allowed)
        inputs.trust_dirs.append(trust_dir)
        findings.extend(problems)
        for display in trust_dir.files:
            if display not in inputs.files:
                inputs.files[display] = read_file(ssl_fd, display, allowed, indexed)
    _password(desired.truststore.password or desired.password, desired.truststore.file, inputs)
    if desired.uses_system_trust():  # outside the ssl dir: its own reading rules (system_trust_read.py)
        inputs.system_trust, system_problems = read_system_trust(desired)
        findings.extend(system_problems)
    return inputs, findings


MAX_STORE_BYTES = 256 * 1024 * 1024  # larger than any store this program writes


def read_output(ssl_fd: int, name: str, path: str) -> OutputFile:
    """An output path, read through the ssl dir's descriptor, never via a link."""
    try:
        st = lstat_at(ssl_fd, name)
    except OSError as exc:
        return OutputFile(name, path, "unreadable", f"cannot be looked at ({exc.strerror})")
    if st is None:
        return OutputFile(name, path, "absent")
    if stat.S_ISLNK(st.st_mode):
        return OutputFile(name, path, "symlink", "is a symlink (outputs are never written through one)", st)
    if not stat.S_ISREG(st.st_mode):
        return OutputFile(name, path, "not-a-file", "is not a regular file", st)
    if st.st_size > MAX_STORE_BYTES:
        return OutputFile(name, path, "unreadable", "is larger than any store this program writes", st)
    try:
        data, st = read_at(ssl_fd, name, name, None, MAX_STORE_BYTES, allow_empty=True)
    except SourceError as exc:
        if exc.finding.code is FindingCode.SYMLINK:  # swapped since the lstat
            return OutputFile(name, path, "symlink", exc.finding.reason, st)
        if exc.finding.code is FindingCode.NOT_A_FILE:
            return OutputFile(name, path, "not-a-file", exc.finding.reason, st)
        return OutputFile(name, path, "unreadable", f"cannot be read ({exc.finding.reason})", st)
    return OutputFile(name, path, "file", stat=st, data=data, digest=hashlib.sha256(data).digest())


def read_pem(ssl_fd: int, desired: DesiredState, ssl_dir: Path) -> PemObserved | None:
    """The PEM outputs: ``pem_dir`` must be absent or our symlink to one of our versions; each file of
    that version read through its descriptor, never via a link."""
    if desired.pem_dir is None:
        return None
    link = desired.pem_dir
    try:
        st = lstat_at(ssl_fd, link)
    except OSError as exc:
        return PemObserved(link, problem=f"cannot be looked at ({exc.strerror})")
    if st is None:
        return PemObserved(link)
    version = current_version_at(ssl_fd, link)
    if version is None:
        return PemObserved(link, problem="is in the way: not this program's link to a version of the PEM outputs")
    try:
        fd = open_subdir(ssl_fd, version)
    except OSError as exc:
        return PemObserved(link, version, problem=f"its version cannot be opened ({exc.strerror})")
    try:
        files = {}
        for name in desired.pem_files():
            member = name.split("/", 1)[1]
            files[name] = replace(read_output(fd, member, str(ssl_dir / name)), name=name)
    finally:
        os.close(fd)
    return PemObserved(link, version, files)


def read_links(ssl_fd: int, rel: str) -> LinkDir:
    """The <hash>.N entries of a trust directory inside the ssl dir (never one reached through a link)."""
    try:
        dir_fd = open_subdir(ssl_fd, rel)
    except OSError as exc:
        why = "is a symlink or not a real directory" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else exc.strerror
        return LinkDir(
            rel, problem=f"hash links not kept: {why}; links are only made in a directory inside the ssl dir"
        )
    try:
        names, _ = list_names(dir_fd, rel)  # names that are not UTF-8 are reported with the sources
        links: dict[str, str] = {}
        occupied: set[str] = set()
        for name in names:
            if not HASH_LINK.match(name):
                continue
            try:
                links[name] = os.readlink(name, dir_fd=dir_fd)
            except OSError:  # EINVAL: not a link
                occupied.add(name)
        return LinkDir(rel, links, frozenset(occupied))
    finally:
        os.close(dir_fd)


def resolve_ownership(permissions: Permissions, where: str) -> tuple[Ownership, list[Finding]]:
    """uid/gid to apply, only as root (an unprivileged run cannot chown, and need not).

    A user or group this system does not have is a finding naming the desired state; that part of
    the ownership is then left as it is, so the stores are still kept right.
    """
    if os.geteuid() != 0:
        return Ownership(), []
    findings: list[Finding] = []

    def lookup(name: str | None, find: Callable[[str], int], field: str, kind: str) -> int | None:
        if not name:
            return None
        try:
            return find(name)
        except KeyError:
            text = f"permissions.{field}: no such {kind} {name!r} on this system; {field}s are left as they are"
            findings.append(error(where, text, FindingCode.UNKNOWN_OWNER))
            return None

    uid = lookup(permissions.owner, lambda n: pwd.getpwnam(n).pw_uid, "owner", "user")
    gid = lookup(permissions.group, lambda n: grp.getgrnam(n).gr_gid, "group", "group")
    return Ownership(uid, gid), findings


def observe(
    ssl_dir: Path,
    ssl_fd: int,
    desired: DesiredState,
    desired_file: str,
    seen: dict[tuple[str, float], float] | None = None,
    index: StatIndex | None = None,
) -> Observed:
    """Everything one reconcile needs, read once below the ssl dir's descriptor.

    ``seen`` (the process memo) remembers when each (source, mtime) was first seen, so a grace window
    runs from then when the mtime is in the future. ``index``: see ``gather_inputs``.
    """
    at = time.time()
    inputs, findings = gather_inputs(ssl_dir, desired, ssl_fd, index)
    owner, owner_findings = resolve_ownership(desired.permissions, desired_file)
    pem_files = set(desired.pem_files())
    outputs = {
        name: read_output(ssl_fd, name, str(ssl_dir / name)) for name in desired.output_files() if name not in pem_files
    }
    links: dict[str, LinkDir] = {}
    if desired.truststore.hash_links:
        for trust_dir in inputs.trust_dirs:
            if trust_dir.is_dir:
                links[trust_dir.display] = read_links(ssl_fd, trust_dir.display)
    first_seen: dict[str, float] = {}
    for display, source in inputs.files.items():
        key = (display, source.mtime)
        first = seen.setdefault(key, at) if seen is not None else at
        first_seen[display] = first
    if seen is not None and len(seen) > len(first_seen):  # forget every (source, mtime) no longer current
        current = {(d, s.mtime) for d, s in inputs.files.items()}
        for key in [k for k in seen if k not in current]:
            del seen[key]
    pem = read_pem(ssl_fd, desired, ssl_dir)
    findings = [*owner_findings, *hook_program_findings(desired.hooks, desired_file), *findings]
    return Observed(str(ssl_dir), at, inputs, findings, outputs, links, owner, first_seen, pem)
