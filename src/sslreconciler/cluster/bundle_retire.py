"""Removing the CA files a later bundle no longer carries (a retired CA), on the word of this node's bundle
record (cluster/bundle_record.py): only a file a bundle put there that still holds exactly the certificates
recorded (by DER); a copy of a retired CA anywhere else in ``authorities/`` is left and named."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping

from sslreconciler.cluster.bundle_record import MAX_CA_BYTES, Ders, NodeRecord, ders_of
from sslreconciler.fsio import TEMP_PREFIX, printable_name, read_at
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.pki import trust
from sslreconciler.pki.sources import parse_certificates


def retire(
    auth_fd: int, display: str, record: NodeRecord | None, carried: Mapping[str, Ders]
) -> tuple[list[str], list[str]]:
    """Remove the CA files earlier bundles installed that this one does not carry, when they still hold
    what was recorded; name every other file that still holds a retired CA. (removed names, notes)."""
    if record is None:
        return [], []
    gone = {name: ders for name, ders in record.authorities.items() if name not in carried}
    kept = frozenset().union(*carried.values())
    retired = frozenset().union(*gone.values()) - kept
    removed, notes = [], []
    for name, ders in sorted(gone.items()):
        try:
            held = ders_of(read_at(auth_fd, name, name, None, MAX_CA_BYTES)[0], name)
        except SourceError as exc:
            if exc.finding.code is not FindingCode.MISSING:
                notes.append(f"{display}/{exc.finding.file} {exc.finding.reason}; left")
            continue
        if held == ders:
            try:
                os.unlink(name, dir_fd=auth_fd)
                removed.append(name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                notes.append(f"{display}/{name} holds a retired CA but cannot be removed ({exc.strerror}); left")
        elif held and held & retired:
            notes.append(
                f"{display}/{name} holds a retired CA and other certificates (changed since a bundle put it "
                "there); left, so that CA is still trusted: remove it by hand"
            )
    if retired:
        try:
            notes += _copies(auth_fd, display, retired, {*removed, *carried})
        except OSError as exc:
            notes.append(f"{display}: cannot be listed ({exc.strerror}), so copies of a retired CA are not named")
    if removed:
        with contextlib.suppress(OSError):
            os.fsync(auth_fd)
    return removed, notes


def _copies(auth_fd: int, display: str, retired: Ders, skip: set[str]) -> list[str]:
    """A note for each other plain file in ``authorities/`` that holds a retired CA."""
    notes = []
    for name in sorted(os.listdir(auth_fd)):
        if name in skip or name.startswith((".", TEMP_PREFIX)):
            continue
        try:  # links and FIFOs are refused here, never followed or opened
            certs = parse_certificates(read_at(auth_fd, name, name, None, MAX_CA_BYTES)[0], name)
        except SourceError:
            continue
        held = [c for c in certs if hashlib.sha256(trust.der(c)).hexdigest() in retired]
        if held:
            notes.append(
                f"{display}/{printable_name(name)} holds {trust.describe(held[0])}, a CA this bundle retired, and "
                "no bundle put it there; left, so that CA is still trusted: remove it if it should go"
            )
    return notes
