"""Where secrets named in the desired state are found, for the service and for an admin's manual run.

Under systemd a credential N is ``$CREDENTIALS_DIRECTORY/N`` (``LoadCredential=``). A manual run has no
``$CREDENTIALS_DIRECTORY``; it reads ``<credentials_dir>/N`` instead: the settings key ``credentials_dir``
(env ``SSLRECONCILER_CREDENTIALS_DIR``, default ``/etc/sslreconciler``, where the RPM puts the file the
unit loads), so ``reconcile``, ``check``, ``web`` and ``pki install-bundle`` use the service's password.
A relative password ``file`` is relative to the desired-state file that names it, not the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DEFAULT_CREDENTIALS_DIR = Path("/etc/sslreconciler")
_PASSWORD_KEYS = ("password", "hmac_key")  # the desired-state keys that hold a password source

_fallback_dir = DEFAULT_CREDENTIALS_DIR


def use_fallback_dir(directory: Path) -> None:
    """Set from the settings (``credentials_dir``) each time they are loaded."""
    global _fallback_dir
    _fallback_dir = directory


def credential_path(name: str) -> tuple[Path, str]:
    """The file holding credential ``name``, and a phrase saying where that directory came from."""
    systemd = os.environ.get("CREDENTIALS_DIRECTORY")
    if systemd:
        return Path(systemd) / name, "$CREDENTIALS_DIRECTORY"
    return _fallback_dir / name, "credentials_dir (no $CREDENTIALS_DIRECTORY: not under systemd)"


def anchor_relative_files(data: Any, base: Path) -> Any:
    """The raw desired state with each relative password ``file`` made relative to ``base``."""
    if isinstance(data, list):
        return [anchor_relative_files(item, base) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in _PASSWORD_KEYS and isinstance(value, dict) and isinstance(value.get("file"), str):
            file = value["file"]
            out[key] = {**value, "file": file if os.path.isabs(file) else str(base / file)}
        else:
            out[key] = anchor_relative_files(value, base)
    return out
