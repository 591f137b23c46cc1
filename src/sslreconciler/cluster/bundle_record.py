"""What this node remembers of the bundles it installed, and the two rules that keep it from going back.

``<state-dir>/bundle-record.json`` holds, per ssl dir (by its real path: one state dir may serve several),
the last installed bundle's ``sequence`` and, per CA file a bundle put in ``authorities/``, the SHA-256 of
each certificate's DER. Whoever runs ``install-bundle`` (root on a node) writes it, mode 0644 (nothing
secret: the daemon and Ansible may read it), and keeps it: root does not hand it to the state dir's owner,
and believes it only while it is the running user's and writable by nobody else. One the service user
wrote is ignored with a note: root never removes a file or refuses a bundle on its word. The record earlier
versions kept in the ssl dir (``bundle-authorities.json``) is taken over once, only when the running user
wrote it (as those versions did), then removed.

Going back is refused twice over: a bundle whose sequence is below the recorded one (a replay), and,
with or without a record, a bundle that would swap ``ssl.crt`` for an older certificate while carrying
no CA the current ``ssl.crt`` chains to. A CA file is removed only when a bundle put it there and it
still holds exactly the certificates it recorded (by DER: a CRLF re-save is the same file); a copy of a
retired CA anywhere else in ``authorities/`` is left and named (cluster/bundle_retire.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from sslreconciler.cluster.sequence import plausible, when
from sslreconciler.fsio import (
    atomic_write_at,
    fd_path,
    open_dir,
    open_subdir,
    opened_dir,
    read_at,
    written_by_others,
)
from sslreconciler.model import boundedjson
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.sources import parse_certificates

RECORD = "bundle-record.json"
LEGACY_RECORD = "bundle-authorities.json"  # in the ssl dir, where versions before 21 kept it
RECORD_FORMAT = 1
MAX_RECORD_BYTES = 256 * 1024
MAX_CA_BYTES = 1024 * 1024
RECORD_DEPTH = 6  # the record's own shape is 4 deep
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.crt$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Ders = frozenset[str]  # the SHA-256 of each certificate's DER in one file


@dataclass(frozen=True, slots=True)
class NodeRecord:
    sequence: int | None = None  # None: only bundles from before sequences were installed
    authorities: Mapping[str, Ders] = field(default_factory=dict)  # CA file a bundle installed -> its DERs

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "authorities": {name: sorted(ders) for name, ders in sorted(self.authorities.items())},
        }


@dataclass(slots=True)
class Loaded:
    record: NodeRecord | None  # this ssl dir's; None: nothing this user wrote, so nothing to act on
    notes: list[str]
    others: dict[str, NodeRecord] = field(default_factory=dict)  # the other ssl dirs', written back as they are


def ders_of(data: bytes, display: str) -> Ders | None:
    """The DER hashes of the certificates in ``data``; None when it holds none that parse."""
    try:
        return frozenset(hashlib.sha256(trust.der(c)).hexdigest() for c in parse_certificates(data, display))
    except SourceError:
        return None


def _parse(data: bytes) -> dict[str, NodeRecord]:
    doc = boundedjson.loads(data, RECORD_DEPTH)
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT or not isinstance(doc.get("ssl_dirs"), dict):
        raise ValueError("not format 1")
    return {str(key): _parse_entry(entry) for key, entry in doc["ssl_dirs"].items()}


def _parse_entry(doc: Any) -> NodeRecord:
    if not isinstance(doc, dict):
        raise ValueError("an entry is not an object")
    sequence = doc.get("sequence")
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0):
        raise ValueError("sequence is not a count")
    entries = doc.get("authorities", {})
    if not isinstance(entries, dict):
        raise ValueError("authorities is not an object")
    authorities: dict[str, Ders] = {}
    for name, ders in entries.items():
        if not _FILE.match(name) or not isinstance(ders, list) or not all(_SHA256.match(str(d)) for d in ders):
            raise ValueError(f"entry {name[:80]!r} is not a CA file name and its hashes")
        authorities[name] = frozenset(str(d) for d in ders)
    return NodeRecord(sequence, authorities)


def ssl_dir_key(ssl_fd: int) -> str:
    """The ssl dir as the record knows it: its real path, the kernel's answer for the open descriptor."""
    return str(fd_path(ssl_fd))


def load(state_dir: Path, ssl_fd: int, ssl_dir: Path) -> Loaded:
    """This ssl dir's record, if this user wrote it; else the one earlier versions left in the ssl dir, if
    this user wrote that; else none. Notes say what was ignored and why."""
    display = f"{state_dir}/{RECORD}"
    try:
        fd = open_dir(state_dir)
    except FileNotFoundError:
        return _legacy(ssl_fd, ssl_dir)
    except OSError as exc:
        return Loaded(None, [f"state dir {state_dir}: cannot be opened ({exc.strerror}); no bundle record used"])
    try:
        data, st = read_at(fd, RECORD, display, None, MAX_RECORD_BYTES)
    except SourceError as exc:
        if exc.finding.code is FindingCode.MISSING:
            return _legacy(ssl_fd, ssl_dir)
        return Loaded(None, [f"{exc.finding}; ignored, and replaced by this install's record"])
    finally:
        os.close(fd)
    problem = written_by_others(st, display)
    if problem:
        return Loaded(None, [f"{problem}: ignored (no file is removed on its word) and replaced by this user's"])
    try:
        entries = _parse(data)
    except (ValueError, TypeError) as exc:
        return Loaded(None, [f"{display}: not a bundle record ({exc}); ignored, and replaced by this install's"])
    key = ssl_dir_key(ssl_fd)
    mine = entries.pop(key, None)
    if mine is None:
        legacy = _legacy(ssl_fd, ssl_dir)
        return Loaded(legacy.record, legacy.notes, entries)
    if mine.sequence is not None and not plausible(mine.sequence):  # it would refuse every real bundle
        note = (
            f"{display}: the recorded sequence stands for {when(mine.sequence)}, beyond what a master can have "
            "made; ignored (this bundle's sequence is recorded instead)"
        )
        return Loaded(NodeRecord(None, mine.authorities), [note], entries)
    return Loaded(mine, [], entries)


def _legacy(ssl_fd: int, ssl_dir: Path) -> Loaded:
    """Take over ``bundle-authorities.json`` (file -> SHA-256 of its bytes) when this user wrote it: each
    entry whose file still holds those bytes becomes an entry by certificate."""
    display = f"{ssl_dir}/{LEGACY_RECORD}"
    try:
        data, st = read_at(ssl_fd, LEGACY_RECORD, display, None, MAX_RECORD_BYTES)
    except SourceError as exc:
        notes = [] if exc.finding.code is FindingCode.MISSING else [f"{exc.finding}; ignored"]
        return Loaded(None, notes)
    problem = written_by_others(st, display)
    if problem:
        return Loaded(None, [f"{problem}: ignored (no file is removed on its word)"])
    try:
        files = boundedjson.loads(data, RECORD_DEPTH)["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
        auth_fd = open_subdir(ssl_fd, "authorities")
    except (ValueError, KeyError, TypeError, RecursionError, OSError):
        return Loaded(None, [])
    authorities: dict[str, Ders] = {}
    try:
        for name, digest in files.items():
            if not isinstance(name, str) or not _FILE.match(name):
                continue
            try:
                held, _ = read_at(auth_fd, name, name, None, MAX_CA_BYTES)
            except SourceError:
                continue
            ders = ders_of(held, name)
            if ders and hashlib.sha256(held).hexdigest() == digest:
                authorities[name] = ders
    finally:
        os.close(auth_fd)
    return Loaded(NodeRecord(None, authorities), [])


def check_order(path: Path, sequence: int | None, created: str, record: NodeRecord | None) -> None:
    """Refuse a bundle older than the last one installed, or one that cannot say (no sequence)."""
    if record is None or record.sequence is None:
        return  # never a sequenced bundle here (or no record this user wrote): nothing to compare
    if sequence is None:
        raise CommandError(
            f"{path}: made by an earlier version (no sequence in its manifest), but this node installed bundle "
            f"sequence {record.sequence}, so it cannot tell whether this one is older; make the bundle again "
            "on the master; nothing installed"
        )
    if sequence < record.sequence:
        raise CommandError(
            f"{path}: older than the bundle this node installed (sequence {sequence}, made {created or '?'}; "
            f"installed: {record.sequence}): it would undo what the later bundle did (a retired CA back, a "
            "newer certificate replaced); make a new bundle on the master; nothing installed"
        )


def check_identity(path: Path, ssl_fd: int, host_crt: str, leaf: x509.Certificate, cas: list[x509.Certificate]) -> None:
    """Never trade the node's ``ssl.crt`` (``host_crt``) for an older certificate (least of all while dropping
    the CA it chains to, as a replayed pre-rotation bundle does): refused even when no record says so."""
    try:
        current = parse_certificates(read_at(ssl_fd, host_crt, host_crt, None, MAX_CA_BYTES)[0], host_crt)
    except SourceError:
        return  # nothing (readable) installed yet
    now = next((c for c in current if not verify.is_ca(c)), current[0])
    if leaf.not_valid_before_utc >= now.not_valid_before_utc:
        return  # the same certificate, a renewal, or a newer one from the new CA at the end of a rotation
    kept = any(trust.der(c) == trust.der(ca) or trust.signed_by(c, ca) for c in current for ca in cas)
    raise CommandError(
        f"{path}: would replace this node's ssl.crt (issued {now.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z by "
        f"{now.issuer.rfc4514_string()}) with an older one (issued {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S}Z "
        f"by {leaf.issuer.rfc4514_string()})"
        + ("" if kept else " and carries no CA that the current one chains to")
        + ": a bundle from before a renewal or a CA rotation? If this node is meant to take that certificate, "
        "re-issue it on the master (`pki issue --renew HOST`) and bundle that; nothing installed"
    )


def save(state_dir: Path, ssl_fd: int, record: NodeRecord, others: Mapping[str, NodeRecord]) -> str:
    """Write the record (this user's, 0644), then drop the ssl dir's old one. A note when it cannot."""
    entries = {**others, ssl_dir_key(ssl_fd): record}
    body = {"format": RECORD_FORMAT, "ssl_dirs": {key: entries[key].to_dict() for key in sorted(entries)}}
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with opened_dir(state_dir) as fd:  # never handed to the directory's owner: its worth is who wrote it
            atomic_write_at(fd, RECORD, (json.dumps(body, indent=2) + "\n").encode(), 0o644)
    except OSError as exc:
        return (
            f"{state_dir}/{RECORD}: cannot be written ({exc.strerror}); installed, but this node will not "
            "recognise an older bundle by its sequence"
        )
    with contextlib.suppress(OSError):
        os.unlink(LEGACY_RECORD, dir_fd=ssl_fd)
    return ""
