"""The desired state from its file (missing file = the sipXecs seed layout), the passwords it names,
and its JSON schema. The model itself is config/desired_model.py; its names are re-exported here."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from sslreconciler.config.acme_model import Acme, AcmeChallenge, AcmeEab
from sslreconciler.config.credentials import anchor_relative_files, credential_path
from sslreconciler.config.desired_model import (
    DEFAULT_PASSWORD,
    DesiredState,
    Hook,
    Permissions,
    TrustPolicy,
    TrustStore,
)
from sslreconciler.config.fields import PasswordSource
from sslreconciler.config.pair_model import KeyPair
from sslreconciler.config.wording import config_error_from_validation
from sslreconciler.fsio import IsADirectory
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.rootread import Untrusted, read_for_root

__all__ = [
    "DEFAULT_PASSWORD",
    "Acme",
    "AcmeChallenge",
    "AcmeEab",
    "DesiredState",
    "Hook",
    "KeyPair",
    "PasswordSource",
    "Permissions",
    "TrustPolicy",
    "TrustStore",
    "desired_state_schema",
    "load_desired_state",
    "resolve_password",
]

MAX_DESIRED_BYTES = 1024 * 1024
MAX_PASSWORD_FILE_BYTES = 64 * 1024


def load_desired_state(path: Path | None) -> DesiredState:
    """The desired state from ``path``; the seed defaults when there is no file."""
    if path is None:
        return DesiredState()
    try:  # a regular file, bounded, never blocking: a FIFO or a device here must not hang anyone
        raw = read_for_root(path, str(path), MAX_DESIRED_BYTES)  # as root: its hooks run as root
    except Untrusted as exc:
        raise ConfigError(path, exc.advice()) from None
    except IsADirectory:
        raise ConfigError(path, "is a directory, not a JSON file") from None
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            return DesiredState()
        raise ConfigError(path, exc.finding.reason) from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, f"invalid JSON: {exc}") from None
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if not k.startswith("//")}  # comment keys
    data = anchor_relative_files(data, path.absolute().parent)
    try:
        return DesiredState.model_validate(data)
    except ValidationError as exc:
        raise config_error_from_validation(path, exc) from None


def resolve_password(source: PasswordSource, credentials_dir: str | None = None) -> str:
    """The password the source names; ValueError (secret-free) when it cannot be had."""
    if source.value is not None:
        return source.value.get_secret_value()
    where = ""
    if source.credential is not None:
        if credentials_dir is not None:
            path = Path(credentials_dir) / source.credential
        else:
            path, origin = credential_path(source.credential)
            where = f" (credential {source.credential!r}, from {origin})"
    else:
        assert source.file is not None
        path = source.file
    try:  # as root: never through a file or link another user could change (a link to /etc/shadow)
        text = read_for_root(path, str(path), MAX_PASSWORD_FILE_BYTES).decode("utf-8")
    except Untrusted as exc:
        raise ValueError(
            f"password file {path}: {exc.problem}; root reads no password another user could change{where}"
        ) from None
    except SourceError as exc:
        raise ValueError(f"password file {path} {exc.finding.reason}{where}") from None
    except UnicodeDecodeError:
        raise ValueError(f"password file {path} is not UTF-8 text") from None
    password = text.splitlines()[0] if text else ""
    if not password:
        raise ValueError(f"password file {path} is empty")
    return password


def desired_state_schema() -> str:
    return json.dumps(DesiredState.model_json_schema(), indent=2)
