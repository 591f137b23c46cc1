"""Configuration errors: which file, which field, why; the CLI turns them into exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pydantic costs ~50 ms to import: not on --help's path
    from pydantic import ValidationError


class CommandError(Exception):
    """A refusal with a clear reason naming the file; the CLI prints it and exits 1."""


class UsageError(CommandError):
    """A bad option value (which option, why); the CLI exits 2 as for any usage error."""


class ConfigError(Exception):
    def __init__(self, file: Path | str, reason: str, field: str | None = None) -> None:
        self.file = str(file)
        self.field = field
        self.reason = reason
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {reason}")


def config_error_from_validation(file: Path | str, exc: ValidationError) -> ConfigError:
    """The first problem pydantic found, as a ConfigError naming the field. Never echoes input values."""
    first = exc.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    more = len(exc.errors()) - 1
    reason = first["msg"] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
    return ConfigError(file, reason, field)
