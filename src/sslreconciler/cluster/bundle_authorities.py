"""Which files in ``authorities/`` came from a bundle, so a later bundle can take a retired CA away.

``install-bundle`` records, in ``<ssl-dir>/bundle-authorities.json``, the name and SHA-256 of each CA file
it put in ``authorities/``. When a later bundle no longer carries one of them (its CA was retired), that
file is removed, but only while it still holds what the bundle put there: a CA file an admin put in
``authorities/``, or edited since, is never touched. Everything is done relative to a descriptor of
``authorities/`` opened without following links, so the record cannot point the root-run command elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from sslreconciler.fsio import atomic_write

RECORD = "bundle-authorities.json"
MAX_RECORD_BYTES = 64 * 1024
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.crt$")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_record(ssl_dir: Path) -> dict[str, str]:
    """File name -> SHA-256 of what a bundle installed; empty when there is no usable record."""
    try:
        fd = os.open(ssl_dir / RECORD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return {}
        data = json.loads(os.read(fd, MAX_RECORD_BYTES + 1)[:MAX_RECORD_BYTES])
    except (OSError, ValueError):
        return {}
    finally:
        os.close(fd)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str) and _FILE.match(k)}


def _hash_of(dir_fd: int, name: str) -> str | None:
    """SHA-256 of ``name`` in the directory, None unless it is a plain file (never through a link)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1024 * 1024:
            return None
        return _sha256(os.read(fd, st.st_size + 1))
    finally:
        os.close(fd)


def sync(ssl_dir: Path, installed: Mapping[str, bytes]) -> list[str]:
    """Record ``installed`` (file name -> content) and remove earlier bundles' CA files it lacks. Removed names."""
    previous = read_record(ssl_dir)
    removed: list[str] = []
    stale = sorted(set(previous) - set(installed))
    if stale:
        dir_fd = os.open(ssl_dir / "authorities", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in stale:
                if _hash_of(dir_fd, name) == previous[name]:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=dir_fd)
                        removed.append(name)
            if removed:
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    body = {"files": {name: _sha256(data) for name, data in sorted(installed.items())}}
    if body["files"] != previous or stale:
        atomic_write(ssl_dir / RECORD, (json.dumps(body, indent=2) + "\n").encode(), 0o644)
    return removed
