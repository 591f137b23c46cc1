"""Findings: what a check says about one file, an error or a warning, never a secret."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    file: str
    reason: str
    # A short machine-readable kind (``key-mismatch``, ``expired`` ...) for monitoring and tests.
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.level.value}: {self.file}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"level": self.level.value, "file": self.file, "reason": self.reason, "code": self.code}


def error(file: str, reason: str, code: str = "invalid") -> Finding:
    return Finding(Level.ERROR, file, reason, code)


def warning(file: str, reason: str, code: str = "warning") -> Finding:
    return Finding(Level.WARNING, file, reason, code)


class SourceError(Exception):
    """A source could not be used; carries the finding that says why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding
