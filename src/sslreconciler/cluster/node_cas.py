"""The cluster CAs a node depends on now: the one home of that rule (``install-bundle``'s check that a
bundle shares a CA with them, and ``pki node-cas``, the collection's pre-flight, both ask here).

A cluster CA a node depends on is
- every CA certificate earlier bundles installed there (the DERs in root's bundle record,
  cluster/bundle_record.py), and
- the CA that issued the node's current host certificate (``ssl.crt``, the desired state's name), when a
  file in ``authorities/`` holds it: that is how a cluster set up by hand, or installed with another state
  dir (so with no record here), shows.

Read-only, as root on the service user's ssl dir: everything relative to the ssl dir's descriptor, never
through a link (``authorities/`` opened without following one, hash links skipped), every read bounded,
at most ``MAX_FILES`` files of ``authorities/`` looked at.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from sslreconciler.cluster.bundle_record import MAX_CA_BYTES, NodeRecord
from sslreconciler.fsio import open_subdir, read_at
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.sources import parse_certificates

MAX_FILES = 512  # authorities/ holds a handful of CAs (and their hash links); more is not a cluster's

RECORD = "bundle record"  # why a CA counts: an earlier bundle installed it
ISSUER = "issuer of ssl.crt"  # why a CA counts: it issued the current host certificate


@dataclass(slots=True)
class Depended:
    """One CA the node depends on: its SHA-256 fingerprint (of the DER), its subject and the file in
    ``authorities/`` holding it (None when no file there holds it any more), and why it counts."""

    fingerprint: str
    subject: str | None = None
    file: str | None = None
    why: list[str] = field(default_factory=list)

    def named(self) -> str:
        return f"{self.subject or 'a CA no file in authorities/ holds'} (SHA-256 {self.fingerprint})"

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "fingerprint": self.fingerprint, "file": self.file, "why": self.why}


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(trust.der(cert)).hexdigest()


def host_leaf(ssl_fd: int, host_crt: str) -> x509.Certificate | None:
    """The current host certificate (the leaf of ``host_crt``); None when there is none readable."""
    try:
        certs = parse_certificates(read_at(ssl_fd, host_crt, host_crt, None, MAX_CA_BYTES)[0], host_crt)
    except SourceError:
        return None
    return next((c for c in certs if not verify.is_ca(c)), certs[0] if certs else None)


def authorities_held(
    ssl_fd: int, authorities: str, problems: list[str] | None = None
) -> dict[str, tuple[str, x509.Certificate]]:
    """fingerprint -> (file, certificate) for every CA certificate a regular file in ``authorities/`` holds.
    ``problems`` (when given) gets why the answer is incomplete: ``authorities/`` there but not opened as the
    reconcile opens it (a link, not a directory, no access), or more than ``MAX_FILES`` entries in it (a
    node's authorities/ holds a handful; more is a mess or a trap, never silently half read)."""
    try:
        auth_fd = open_subdir(ssl_fd, authorities)
    except OSError as exc:
        if exc.errno != errno.ENOENT and problems is not None:
            problems.append(f"{authorities}/ cannot be opened as the reconcile opens it ({exc.strerror})")
        return {}
    held: dict[str, tuple[str, x509.Certificate]] = {}
    try:
        names = sorted(os.listdir(auth_fd))
        if len(names) > MAX_FILES and problems is not None:
            problems.append(f"{authorities}/ holds {len(names)} entries, more than the {MAX_FILES} looked at")
        for name in names[:MAX_FILES]:
            try:
                certs = parse_certificates(read_at(auth_fd, name, name, None, MAX_CA_BYTES)[0], name)
            except SourceError:
                continue  # a hash link, a directory, not PEM: not a CA file
            for cert in certs:
                held.setdefault(fingerprint(cert), (f"{authorities}/{name}", cert))
    finally:
        os.close(auth_fd)
    return held


def depended(
    ssl_fd: int, record: NodeRecord | None, host_crt: str, authorities: str, problems: list[str] | None = None
) -> list[Depended]:
    """The CAs the node depends on, by fingerprint (sorted), each with its subject where a file holds it;
    ``problems`` as ``authorities_held``'s."""
    held = authorities_held(ssl_fd, authorities, problems)
    found: dict[str, Depended] = {}
    for ders in record.authorities.values() if record else ():
        for fp in ders:
            entry = found.setdefault(fp, Depended(fp))
            if RECORD not in entry.why:
                entry.why.append(RECORD)
    leaf = host_leaf(ssl_fd, host_crt)
    if leaf is not None:
        for fp, (_, cert) in sorted(held.items()):
            if verify.is_ca(cert) and trust.signed_by(leaf, cert):
                found.setdefault(fp, Depended(fp)).why.append(ISSUER)
    for fp, entry in found.items():
        if fp in held:
            entry.file, cert = held[fp]
            entry.subject = trust.describe(cert)
    return [found[fp] for fp in sorted(found)]


def check_shares(path: object, deps: list[Depended], carried: list[x509.Certificate], takeover: bool) -> str:
    """Refuse a bundle that would switch the node's cluster CA without the overlap every rotation step keeps,
    unless ``takeover``: it must carry at least one CA an earlier bundle installed (when one did), and the CA
    that issued the node's current ``ssl.crt`` when ``authorities/`` trusts it and no recorded bundle installed
    it. A note when ``--takeover`` let such a bundle in; "" otherwise."""
    fps = {fingerprint(c) for c in carried}
    recorded = [d for d in deps if RECORD in d.why]
    # The issuer of ssl.crt counts on its own only when no bundle recorded here installed it (a cluster set up
    # by hand, or with another state dir): a recorded one is the record's, whose rotation steps keep overlap.
    missing = [d for d in deps if d.why == [ISSUER] and d.fingerprint not in fps]
    if recorded and not any(d.fingerprint in fps for d in recorded):
        missing = [*missing, *(d for d in recorded if d not in missing)]
    if not missing:
        return ""
    bundle_cas = ", ".join(f"{trust.describe(c)} (SHA-256 {fingerprint(c)})" for c in carried) or "no CA"
    depends = ", ".join(f"{d.named()} [{', '.join(d.why)}]" for d in missing)
    if takeover:
        return f"--takeover: this node no longer depends on {depends}; it now trusts {bundle_cas}"
    raise CommandError(
        f"{path}: carries {bundle_cas}, but not {depends}, which this node depends on now: installing it would "
        "remove trust a running cluster depends on (a bundle from another staging area, or a rotation step "
        'skipped). Make the bundle from the staging area that holds that CA (docs/fleet.md, "Taking over a '
        'running cluster"), or, if this node is meant to switch CA, install it with --takeover; nothing installed'
    )
