"""The staging area's CA record: which CA signs now, which older one is still trusted, which were retired.

``ca-rotation.json`` in the staging area exists only once a rotation has begun (``pki rotate-ca``).
Without it the staging area holds exactly one CA, as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from sslreconciler.fsio import atomic_write_at
from sslreconciler.model.errors import CommandError, UsageError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.rootread import read_for_root

RECORD = "ca-rotation.json"
MAX_RECORD_BYTES = 64 * 1024
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


@dataclass(frozen=True, slots=True)
class CARecord:
    current: str
    previous: str | None = None  # still trusted while hosts move to ``current``
    retired: tuple[str, ...] = field(default_factory=tuple)

    @property
    def trusted(self) -> list[str]:
        return [self.current, *([self.previous] if self.previous else [])]


def valid_ca_name(name: str) -> str:
    """The name as a file stem, or a CommandError saying what a CA name may hold."""
    if not _NAME.match(name) or name.endswith((".crt", ".key")):
        raise UsageError(f"--name {name!r}: a CA name is letters, digits, '.', '_' and '-' (it is a file name)")
    return name


def read_record(staging: Path) -> CARecord | None:
    """The record, None when there is none. As root, one only root could have written (Untrusted else):
    it names the CA that signs."""
    path = staging / RECORD
    try:
        data = json.loads(read_for_root(path, str(path), MAX_RECORD_BYTES))
        current, previous = data["current"], data.get("previous")
        retired = tuple(data.get("retired", []))
        if not isinstance(current, str) or not (previous is None or isinstance(previous, str)):
            raise TypeError("current/previous must be names")
        if not all(isinstance(r, str) for r in retired):
            raise TypeError("retired must be a list of names")
    except SourceError as exc:
        if exc.finding.code in (FindingCode.MISSING, FindingCode.DANGLING_SYMLINK):  # none, as before
            return None
        raise CommandError(f"{path}: cannot be read as the CA rotation record ({exc.finding.reason})") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CommandError(f"{path}: cannot be read as the CA rotation record ({exc}); fix or remove it") from None
    return CARecord(current, previous, retired)


def write_record(staging_fd: int, record: CARecord) -> None:
    """Into the staging area's (judged) directory descriptor."""
    body = {"current": record.current, "previous": record.previous, "retired": list(record.retired)}
    atomic_write_at(staging_fd, RECORD, (json.dumps(body, indent=2) + "\n").encode(), 0o644)
