"""Read everything a reconcile needs from disk, once, into plain values for the pure planner."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sslreconciler.config.desired import DesiredState, PasswordSource, resolve_password
from sslreconciler.fsio import TEMP_PREFIX, fd_path, list_names, lstat_at, open_dir, read_at
from sslreconciler.model.findings import Finding, SourceError, error

TRUST_SUFFIXES = (".crt", ".pem", ".cer", ".der")
HASH_LINK = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")


@dataclass(frozen=True, slots=True)
class SourceFile:
    display: str  # path relative to the ssl dir, as findings name it
    data: bytes | None = field(default=None, repr=False)
    problem: Finding | None = None
    present: bool = True
    mode: int = 0
    mtime: float = 0.0


@dataclass(frozen=True, slots=True)
class TrustDir:
    display: str
    files: tuple[str, ...]  # displays of the certificate files, sorted
    is_dir: bool


@dataclass(slots=True)
class Inputs:
    files: dict[str, SourceFile] = field(default_factory=dict)
    trust_dirs: list[TrustDir] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)  # store name -> password
    password_problems: dict[str, Finding] = field(default_factory=dict)


def read_file(ssl_fd: int, rel: str, allowed: list[Path]) -> SourceFile:
    """A source below the ssl dir's descriptor; links are followed only to where ``allowed`` says."""
    try:
        there = lstat_at(ssl_fd, rel)
    except OSError:
        there = None
    if there is None:
        return SourceFile(rel, present=False)
    try:
        data, st = read_at(ssl_fd, rel, rel, allowed)
    except SourceError as exc:
        return SourceFile(rel, problem=exc.finding, mtime=there.st_mtime)
    return SourceFile(rel, data=data, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime)


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
        return TrustDir(rel, (), False), [error(rel, f"cannot be looked at: {exc.strerror}", "unreadable")]
    if there is None:
        return TrustDir(rel, (), False), [
            error(rel, "is missing: no trusted certificates to verify against", "missing")
        ]
    try:
        fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=ssl_fd)
    except NotADirectoryError:
        return TrustDir(rel, (rel,), False), []  # a single file (its read says if it is usable)
    except OSError as exc:
        return TrustDir(rel, (), True), [error(rel, f"cannot be listed: {exc.strerror}", "unreadable")]
    try:
        real = fd_path(fd)
        if not any(real == root or root in real.parents for root in allowed):
            problem = error(rel, f"is a symlink to {real}, outside the allowed places", "symlink-escape")
            return TrustDir(rel, (), True), [problem]
        names, problems = list_names(fd, rel.rstrip("/"))
    except OSError as exc:
        return TrustDir(rel, (), True), [error(rel, f"cannot be listed: {exc.strerror}", "unreadable")]
    finally:
        os.close(fd)
    files = tuple(f"{rel.rstrip('/')}/{n}" for n in names if is_trust_file_name(n))
    return TrustDir(rel, files, True), problems


def _password(source: PasswordSource, name: str, inputs: Inputs) -> None:
    try:
        inputs.passwords[name] = resolve_password(source)
    except ValueError as exc:
        inputs.password_problems[name] = error(name, f"no store password: {exc}", "password")


def gather_inputs(ssl_dir: Path, desired: DesiredState, ssl_fd: int | None = None) -> tuple[Inputs, list[Finding]]:
    """Every source file's bytes (or why not), the trust files, and each store's password."""
    if ssl_fd is None:
        ssl_fd = open_dir(ssl_dir)
        try:
            return gather_inputs(ssl_dir, desired, ssl_fd)
        finally:
            os.close(ssl_fd)
    # The ssl dir is where its descriptor really is, resolved once; links may lead there or to the
    # allowed directories, nowhere else.
    allowed = [fd_path(ssl_fd), *(Path(os.path.realpath(d)) for d in desired.allowed_symlink_dirs)]
    inputs = Inputs()
    findings: list[Finding] = []
    for pair in desired.pairs:
        for rel in (pair.key, pair.cert):
            inputs.files.setdefault(rel, read_file(ssl_fd, rel, allowed))
        for out in (pair.keystore, pair.pkcs12):
            if out:
                _password(pair.password or desired.password, out, inputs)
    for rel in desired.truststore.sources:
        trust_dir, problems = _list_trust_source(ssl_fd, rel, allowed)
        inputs.trust_dirs.append(trust_dir)
        findings.extend(problems)
        for display in trust_dir.files:
            inputs.files.setdefault(display, read_file(ssl_fd, display, allowed))
    _password(desired.truststore.password or desired.password, desired.truststore.file, inputs)
    return inputs, findings
