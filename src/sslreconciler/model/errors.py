"""The errors every layer raises, under one root: a refusal (exit 1), a usage error or a config error (exit 2).

Each names the file (and field) and the reason; none ever carries a secret. Every exception class the
package defines derives from ``SslReconcilerError`` (tests/test_error_root.py walks them); one that callers
catch as a ``ValueError`` or an ``OSError`` keeps that base too (``DERError``, ``DirLocked``).
"""

from __future__ import annotations

TYPE_CHECKING = False  # pathlib only for mypy: `status` raises these and does without its import
if TYPE_CHECKING:
    from pathlib import Path


class SslReconcilerError(Exception):
    """The root: anything this program refuses on purpose, as opposed to a bug."""


class CommandError(SslReconcilerError):
    """A refusal with a clear reason naming the file; the CLI prints it and exits 1."""


class UsageError(CommandError):
    """A bad option value (which option, why); the CLI exits 2 as for any usage error."""


class ConfigError(SslReconcilerError):
    def __init__(self, file: Path | str, reason: str, field: str | None = None) -> None:
        self.file = str(file)
        self.field = field
        self.reason = reason
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {reason}")
