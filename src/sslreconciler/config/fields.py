"""The desired state's building blocks: checked field types, the strict base model, a password's source."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

from sslreconciler.model.jks_alias import alias_unfit


def _plain_name(value: str) -> str:
    if not value or "/" in value or value in {".", ".."} or "\0" in value:
        raise ValueError("must be a plain file name inside the ssl directory")
    return value


def _relative_path(value: str) -> str:
    parts = Path(value).parts
    if not parts or Path(value).is_absolute() or ".." in parts:
        raise ValueError("must be a relative path inside the ssl directory")
    return value


def _mode(value: str) -> str:
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError('must be an octal mode such as "0600"') from None
    if not 0 <= mode <= 0o777:
        raise ValueError("must be between 0000 and 0777")
    return value


def _jks_alias(value: str) -> str:
    unfit = alias_unfit(value)
    if unfit:
        raise ValueError(f"the key entry alias {unfit}")
    return value


FileName = Annotated[str, AfterValidator(_plain_name)]
RelPath = Annotated[str, AfterValidator(_relative_path)]
Mode = Annotated[str, AfterValidator(_mode)]
JksAlias = Annotated[str, AfterValidator(_jks_alias)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordSource(Strict):
    """Exactly one of value, file, credential. Default: the literal ``changeit``."""

    value: SecretStr | None = Field(None, description="The password itself.")
    file: Path | None = Field(
        None, description="A file whose first line is the password; a relative path is relative to this file."
    )
    credential: str | None = Field(
        None,
        description="A systemd credential name, read from $CREDENTIALS_DIRECTORY/<name>; by hand (no "
        "$CREDENTIALS_DIRECTORY) from <credentials_dir>/<name>, default /etc/sslreconciler/<name>.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PasswordSource:
        given = [n for n in ("value", "file", "credential") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of value, file, credential")
        if self.credential is not None:
            _plain_name(self.credential)
        return self

    def describe(self) -> str:
        if self.file is not None:
            return f"file {self.file}"
        if self.credential is not None:
            return f"credential {self.credential}"
        return "literal value"
