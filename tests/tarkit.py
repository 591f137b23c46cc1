"""Bundles taken apart and put back together: the one place the tests build tar files by hand."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping
from pathlib import Path

Member = tuple[tarfile.TarInfo, bytes | None]


def members_of(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """Every member of a bundle with its contents, in the bundle's order (the TarInfo as read: mode, type...)."""
    with tarfile.open(bundle) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def files_of(bundle: Path) -> dict[str, bytes]:
    return {m.name: data for m, data in members_of(bundle)}


def file_member(name: str, data: bytes, mode: int | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    if mode is not None:
        info.mode = mode
    return info, data


def tgz(members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT, pax: dict[str, str] | None = None) -> bytes:
    """A gzipped tar of (TarInfo, contents) as given (None: a member with no data, e.g. a link)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=fmt, pax_headers=pax) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def tgz_files(files: Mapping[str, bytes] | Iterable[tuple[str, bytes]], mode: int | None = None) -> bytes:
    """A gzipped tar of plain files, by name, in the order given."""
    items = files.items() if isinstance(files, Mapping) else files
    return tgz(file_member(name, data, mode) for name, data in items)


def rehashed(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The files with manifest.json's checksums made to match them (so only a deeper check can refuse)."""
    out = dict(files)
    manifest = json.loads(out["manifest.json"])
    manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in out.items()
                         if n not in ("manifest.json", "manifest.sig")}
    out["manifest.json"] = json.dumps(manifest).encode()
    return out
