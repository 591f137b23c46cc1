"""Read everything a reconcile needs from disk, once, into plain values for the pure planner."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sslreconciler.desired import DesiredState, PasswordSource, resolve_password
from sslreconciler.findings import Finding, SourceError, error
from sslreconciler.fsio import TEMP_PREFIX, read_source

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


def read_file(ssl_dir: Path, rel: str, allowed: list[Path]) -> SourceFile:
    path = ssl_dir / rel
    if not os.path.lexists(path):
        return SourceFile(rel, present=False)
    try:
        data, st = read_source(path, rel, allowed)
    except SourceError as exc:
        try:
            mtime = os.lstat(path).st_mtime
        except OSError:
            mtime = 0.0
        return SourceFile(rel, problem=exc.finding, mtime=mtime)
    return SourceFile(rel, data=data, mode=stat.S_IMODE(st.st_mode), mtime=st.st_mtime)


def is_trust_file_name(name: str) -> bool:
    return (
        not name.startswith(".")
        and not name.startswith(TEMP_PREFIX)
        and name.lower().endswith(TRUST_SUFFIXES)
        and not HASH_LINK.match(name)
    )


def _list_trust_source(ssl_dir: Path, rel: str) -> tuple[TrustDir, Finding | None]:
    path = ssl_dir / rel
    if path.is_dir():
        try:
            names = sorted(n for n in os.listdir(path) if is_trust_file_name(n))
        except OSError as exc:
            return TrustDir(rel, (), True), error(rel, f"cannot be listed: {exc.strerror}", "unreadable")
        return TrustDir(rel, tuple(f"{rel.rstrip('/')}/{n}" for n in names), True), None
    if os.path.lexists(path):
        return TrustDir(rel, (rel,), False), None
    return TrustDir(rel, (), False), error(rel, "is missing: no trusted certificates to verify against", "missing")


def _password(source: PasswordSource, name: str, inputs: Inputs) -> None:
    try:
        inputs.passwords[name] = resolve_password(source)
    except ValueError as exc:
        inputs.password_problems[name] = error(name, f"no store password: {exc}", "password")


def gather_inputs(ssl_dir: Path, desired: DesiredState) -> tuple[Inputs, list[Finding]]:
    """Every source file's bytes (or why not), the trust files, and each store's password."""
    allowed = [ssl_dir, *desired.allowed_symlink_dirs]
    inputs = Inputs()
    findings: list[Finding] = []
    for pair in desired.pairs:
        for rel in (pair.key, pair.cert):
            inputs.files.setdefault(rel, read_file(ssl_dir, rel, allowed))
        for out in (pair.keystore, pair.pkcs12):
            if out:
                _password(pair.password or desired.password, out, inputs)
    for rel in desired.truststore.sources:
        trust_dir, problem = _list_trust_source(ssl_dir, rel)
        inputs.trust_dirs.append(trust_dir)
        if problem:
            findings.append(problem)
        for display in trust_dir.files:
            inputs.files.setdefault(display, read_file(ssl_dir, display, allowed))
    _password(desired.truststore.password or desired.password, desired.truststore.file, inputs)
    return inputs, findings
