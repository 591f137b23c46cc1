"""Daemon settings: where to look and how to behave. A TOML file, then env, then command-line flags.

Precedence: defaults < config file < ``SSLRECONCILER_<FIELD>`` environment variables < flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sslreconciler.config.credentials import use_fallback_dir
from sslreconciler.config.wording import config_error_from_validation
from sslreconciler.model.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/sslreconciler/sslreconciler.toml")
ENV_PREFIX = "SSLRECONCILER_"
MAX_SETTINGS_BYTES = 1024 * 1024


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ssl_dir: Path = Field(Path("/etc/sipxpbx/ssl"), description="The node's TLS directory.")
    state_dir: Path | None = Field(
        None,
        description="Where run state is kept. Default: $STATE_DIRECTORY (systemd), /var/lib/sslreconciler as "
        "root, else $XDG_STATE_HOME/sslreconciler (~/.local/state/sslreconciler).",
    )
    desired_state: Path = Field(
        Path("/etc/sslreconciler/desired-state.json"),
        description="The desired-state JSON file; when missing, the seed defaults apply.",
    )
    socket: Path = Field(Path("/run/sslreconciler/health.sock"), description="The health socket.")
    credentials_dir: Path = Field(
        Path("/etc/sslreconciler"),
        description="Where a manual run (no $CREDENTIALS_DIRECTORY) reads a credential named in the desired state.",
    )
    quiet_period: float = Field(0.2, ge=0, le=60, description="Seconds of calm after a change before reconciling.")
    max_wait: float = Field(2.0, gt=0, le=600, description="Longest wait for calm under a continuous event storm.")
    grace_period: float = Field(
        10.0, ge=0, le=3600, description="Seconds a freshly modified bad source is reported pending, not degraded."
    )
    resync_interval: float = Field(300.0, gt=0, description="Seconds between full resyncs that heal lost events.")
    full_read_every: int = Field(
        12,
        ge=1,
        le=1_000_000,
        description="Every Nth resync reads and judges every trust file in full; the others (and every "
        "change) take a trust file whose device, inode, size, mtime and ctime are unchanged as unchanged. "
        "1: every resync reads everything.",
    )
    hook_timeout: float = Field(30.0, gt=0, description="Default seconds a post-change hook may run.")
    workers: int = Field(
        0,
        ge=0,
        le=64,
        description="How many cores a large reconcile's per-certificate work may use: 0 (default) one per usable "
        "core, at most 4; 1 serial. Worker processes only in a one-shot command with 512 or more new trust "
        "files; the daemon (which has threads, so cannot fork safely) does that work in its own thread.",
    )
    metrics_textfile: Path | None = Field(
        None,
        description="Off by default. A file in node_exporter's textfile directory (e.g. "
        "/var/lib/prometheus/node-exporter/sslreconciler.prom) the daemon rewrites with its /metrics text after "
        "every reconcile and hook outcome, atomically, mode 0644; the name must end in .prom.",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: JSON lines unless stdout is a terminal."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("metrics_textfile")
    @classmethod
    def _textfile_name(cls, value: Path | None) -> Path | None:
        if value is not None and (not value.is_absolute() or not value.name.endswith(".prom")):
            raise ValueError(
                "must be an absolute path ending in .prom, e.g. /var/lib/prometheus/node-exporter/sslreconciler.prom: "
                "node_exporter's textfile collector reads only *.prom files."
            )
        return value

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        if os.environ.get("STATE_DIRECTORY"):  # systemd's StateDirectory=
            return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
        if os.geteuid() == 0:
            return Path("/var/lib/sslreconciler")
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "sslreconciler"


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # here: a command given its paths by flags or the environment reads no TOML

    from sslreconciler.fsio import IsADirectory
    from sslreconciler.model.findings import FindingCode, SourceError
    from sslreconciler.rootread import Untrusted, read_for_root

    try:  # a regular file, bounded, never blocking; as root, one only root could have written
        return tomllib.loads(read_for_root(path, str(path), MAX_SETTINGS_BYTES).decode("utf-8"))
    except Untrusted as exc:
        raise ConfigError(path, exc.advice()) from None
    except IsADirectory:
        raise ConfigError(path, "is a directory, not a TOML file") from None
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            raise ConfigError(path, "file not found") from None
        raise ConfigError(path, exc.finding.reason) from None
    except UnicodeDecodeError:
        raise ConfigError(path, "invalid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, f"invalid TOML: {exc}") from None


def _env_overrides(env: Mapping[str, str]) -> dict[str, str]:
    fields = Settings.model_fields
    return {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :].lower() in fields
    }


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from ``config`` (or the default file when it exists), env and flag ``overrides``."""
    env = os.environ if env is None else env
    explicit = config or (Path(env["SSLRECONCILER_CONFIG"]) if env.get("SSLRECONCILER_CONFIG") else None)
    values: dict[str, Any] = {}
    source: Path | str = "defaults"
    if explicit is not None:
        values = _read_toml(explicit)
        source = explicit
    elif DEFAULT_CONFIG.is_file():
        values = _read_toml(DEFAULT_CONFIG)
        source = DEFAULT_CONFIG
    try:
        Settings.model_validate(values)
    except ValidationError as exc:
        raise config_error_from_validation(source, exc) from None
    env_values = _env_overrides(env)
    try:
        Settings.model_validate({**values, **env_values})
    except ValidationError as exc:
        raise config_error_from_validation("environment (SSLRECONCILER_*)", exc) from None
    merged = {**values, **env_values, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise config_error_from_validation("command line", exc) from None
    use_fallback_dir(settings.credentials_dir)
    return settings
