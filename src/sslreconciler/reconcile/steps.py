"""The steps decide can choose, and what execute hands back when one fails. Plain values, no I/O.

Each step names the artifact or link it changes; execute carries them out in order, ``settle`` turns a
``StepFailed`` into what it leaves behind. The table in docs/design.md lists when each is chosen.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from sslreconciler.reconcile.plan import ArtifactKind
from sslreconciler.reconcile.report import CertInfo
from sslreconciler.stores.entries import StoreContent
from sslreconciler.stores.pkcs12 import Profile


@dataclass(frozen=True, slots=True)
class WriteStore:
    """Encode ``content`` and put it in place atomically, created with ``mode`` and the owner."""

    name: str
    path: str  # what the memo knows it by
    kind: ArtifactKind
    content: StoreContent = field(repr=False)
    password: str = field(repr=False)
    profile: Profile
    mode: int
    uid: int | None  # None: the ssl dir's
    gid: int | None
    existed: bool  # a write that fails then keeps what is there
    previous: CertInfo | None  # the certificate the rewrite replaces


@dataclass(frozen=True, slots=True)
class FixAttributes:
    """Correct mode and/or owner of the very inode observed (same bytes)."""

    name: str
    observed: os.stat_result
    mode: int | None
    uid: int | None
    gid: int | None

    def describe(self) -> str:
        """What the fix changes, for the report: ``owner``, ``mode 0640 -> 0600``."""
        said = []
        if self.uid is not None or self.gid is not None:
            said.append("owner")
        if self.mode is not None:
            said.append(f"mode {stat.S_IMODE(self.observed.st_mode):04o} -> {self.mode:04o}")
        return ", ".join(said)


@dataclass(frozen=True, slots=True)
class MakeLink:
    directory: str
    name: str
    target: str
    fresh: bool = False  # observe saw nothing of that name: made in place, no temp + rename (fsio.new_symlink_at)


@dataclass(frozen=True, slots=True)
class RemoveLink:
    directory: str
    name: str


@dataclass(frozen=True, slots=True)
class WriteFile:
    """Replace one plain output (the PEM CA bundle) atomically, created with ``mode`` and the owner."""

    name: str
    data: bytes = field(repr=False)
    mode: int
    uid: int | None  # None: the ssl dir's
    gid: int | None
    existed: bool


@dataclass(frozen=True, slots=True)
class SwapPemSet:
    """Write every PEM output into a new version of ``directory`` and swap to it with one rename.

    ``files``: (member name, data, mode), the whole set: what is planned, and the last good bytes of a
    blocked pair's. ``written``: the outputs (``directory/member``) whose content this changes."""

    directory: str
    files: tuple[tuple[str, bytes, int], ...] = field(repr=False)
    uid: int | None
    gid: int | None
    written: tuple[str, ...]
    existed: tuple[str, ...]  # the outputs there before: a failed swap keeps them


Step = WriteStore | FixAttributes | MakeLink | RemoveLink | WriteFile | SwapPemSet


@dataclass(frozen=True, slots=True)
class StepFailed:
    step: Step
    reason: str  # strerror
