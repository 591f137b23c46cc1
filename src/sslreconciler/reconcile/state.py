"""The observed state: plain values ``observe`` fills and ``decide`` reads. No I/O here.

``Observed`` is everything one reconcile knows about the node, read once: the sources, what every
output holds now, each trust directory's hash links, and the owner to apply.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sslreconciler.model.findings import Finding, FindingCode, error

if TYPE_CHECKING:
    from sslreconciler.reconcile.file_facts import FileFacts
    from sslreconciler.reconcile.stat_index import StatKey

HASH_LINK = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")  # OpenSSL's <subject hash>.<n>


@dataclass(frozen=True, slots=True)
class SourceFile:
    display: str  # path relative to the ssl dir, as findings name it
    data: bytes | None = field(default=None, repr=False)
    problem: Finding | None = None
    present: bool = True
    mode: int = 0
    mtime: float = 0.0
    # a trust file: its stat as read (None for a link: never indexed), or instead of ``data`` the facts the
    # stat index proved unchanged (reconcile/stat_index.py)
    stat: StatKey | None = None
    facts: FileFacts | None = field(default=None, repr=False)


def source_bytes(file: SourceFile | None, display: str) -> bytes | Finding:
    """A source's bytes, or the finding that says why there are none to use."""
    if file is None or not file.present:
        return error(display, "is missing", FindingCode.MISSING)
    if file.problem is not None:
        return file.problem
    assert file.data is not None  # observe gives a present file without a problem its bytes (or facts)
    return file.data


@dataclass(frozen=True, slots=True)
class TrustDir:
    display: str
    files: tuple[str, ...]  # displays of the certificate files, sorted
    is_dir: bool


@dataclass(frozen=True, slots=True)
class SystemTrustFiles:
    """The system trust store's certificate files as read (reconcile/system_trust_read.py): parsed in decide."""

    where: str  # the bundle file and/or directory read, for messages
    files: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)  # (path, bytes), in reading order


@dataclass(slots=True)
class Inputs:
    files: dict[str, SourceFile] = field(default_factory=dict)
    trust_dirs: list[TrustDir] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict, repr=False)  # store name -> password
    password_problems: dict[str, Finding] = field(default_factory=dict)
    system_trust: SystemTrustFiles | None = None  # read only when a pair verifies with the system store
    stat_taken_ns: int = 0  # wall clock just before the trust files' stats were taken (the stat index's)


@dataclass(frozen=True, slots=True)
class Ownership:
    """The uid/gid outputs must have; None leaves it as it is (and new files take the ssl dir's)."""

    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True, slots=True)
class OutputFile:
    """What an output path holds now: its kind, and for a regular file its bytes (not decoded)."""

    name: str
    path: str  # ssl dir / name: what the memo and the state-dir record know it by
    kind: Literal["absent", "file", "symlink", "not-a-file", "unreadable"]
    why: str = ""  # for "unreadable", "symlink" and "not-a-file": said in the report
    stat: os.stat_result | None = None
    data: bytes | None = field(default=None, repr=False)
    digest: bytes = b""  # SHA-256 of ``data``


@dataclass(frozen=True, slots=True)
class LinkDir:
    """A trust directory's hash-link names now: link -> target, and names taken by something else."""

    directory: str
    links: dict[str, str] = field(default_factory=dict)
    occupied: frozenset[str] = frozenset()  # <hash>.N names that are not symlinks
    problem: str = ""  # why links cannot be kept there at all


@dataclass(frozen=True, slots=True)
class PemObserved:
    """The PEM outputs' directory (``pem_dir``): a symlink to the current version, and what it holds."""

    directory: str  # pem_dir, e.g. "live"
    version: str = ""  # the version directory it points at now; "" for none
    files: dict[str, OutputFile] = field(default_factory=dict)  # "live/ssl-web.key" -> what it holds
    problem: str = ""  # something this program did not make is in the way: nothing is replaced


@dataclass(slots=True)
class Observed:
    """One reconcile's view of the node: everything ``decide`` needs, as plain values."""

    ssl_dir: str
    at: float  # wall clock when observed
    inputs: Inputs
    findings: list[Finding]
    outputs: dict[str, OutputFile]
    links: dict[str, LinkDir]
    owner: Ownership
    first_seen: dict[str, float] = field(default_factory=dict)  # source -> when first seen with its mtime
    pem: PemObserved | None = None  # None: no pem_dir
