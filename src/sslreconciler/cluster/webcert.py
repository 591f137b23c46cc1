"""The web-certificate workflow's writes: installing what an outside CA (or ACME) signed, rolling back.

Each runs as a command's change inside ``Reconciler.run`` (the writer lock held, relative to the ssl dir's
descriptor), so the stores are rebuilt from the new pair in the same lock session. The files are the
desired state's web pair (cluster/layout.py; ``web csr`` is cluster/webcsr.py). ``install`` checks the
signed certificate against the pending key (or a given one), judges its chain with the one verdict
(pki/verdict.py) for the pair's own TLS purposes against the CAs of the trust sources, and installs it
unverified when its issuer is not there, as sipXecs does (a self-signed certificate, or one whose root
only came with it, is unverified); the current pair is kept as ``<key>.previous``/``<cert>.previous`` so
``rollback`` can put it back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sslreconciler.cluster.layout import WebPair
from sslreconciler.fsio import (
    MAX_SOURCE_BYTES,
    atomic_write_at,
    list_names,
    lstat_at,
    open_subdir,
    owner_for_new_files,
    read_at,
    read_source,
    replace_together_at,
)
from sslreconciler.model.errors import CommandError
from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.pki import trust, verify
from sslreconciler.pki.issue import cert_pem, key_pem
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key
from sslreconciler.pki.verdict import judge_chain
from sslreconciler.reconcile.observe import is_trust_file_name


def _load(path: Path, what: str) -> bytes:
    try:
        data, _ = read_source(path, str(path), [path.parent])
    except SourceError as exc:
        raise CommandError(f"{what}: {exc.finding}") from None
    return data


def _authority_certs(ssl_fd: int, sources: tuple[str, ...]) -> list[x509.Certificate]:
    """The CAs in the trust sources: real directories (or plain files) only, each read bounded."""
    out: list[x509.Certificate] = []
    for rel in sources:
        try:
            dir_fd = open_subdir(ssl_fd, rel)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and "/" not in rel:  # a file of CAs in the ssl dir itself
                out.extend(_cas_in(ssl_fd, rel))
            continue  # missing, or a symlink: no issuer at hand here
        try:
            names, _ = list_names(dir_fd, rel)
            for name in names:
                if is_trust_file_name(name):
                    out.extend(_cas_in(dir_fd, name))
        finally:
            os.close(dir_fd)
    return out


def _cas_in(dir_fd: int, name: str) -> list[x509.Certificate]:
    try:
        data, _ = read_at(dir_fd, name, name, None)
        certs = parse_certificates(data, name)
    except SourceError:
        return []  # a FIFO, a link, garbage: not a CA anyone can rely on
    return certs if all(verify.is_ca(c) and trust.anchor_problem(c) is None for c in certs) else []


def read_here(ssl_fd: int, name: str, ssl_dir: Path) -> bytes | None:
    """A file of the ssl dir itself, never through a link, bounded; None when there is none."""
    try:
        return read_at(ssl_fd, name, str(ssl_dir / name), None, MAX_SOURCE_BYTES)[0]
    except SourceError as exc:
        if exc.finding.code == FindingCode.MISSING:
            return None
        raise CommandError(f"{exc.finding}; nothing changed") from None


def _remove_here(ssl_fd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=ssl_fd)


@dataclass(frozen=True, slots=True)
class Installed:
    message: str
    verified: bool


@contextlib.contextmanager
def _write_errors_named(ssl_dir: Path, outcome: str) -> Iterator[None]:
    """A write that fails (disk full, read-only) is a clear error, not a traceback; the pair is whole."""
    try:
        yield
    except OSError as exc:
        raise CommandError(
            f"{ssl_dir}: the web pair cannot be written ({exc.strerror or exc}); {outcome}, the files as they were"
        ) from None


def install_at(
    ssl_dir: Path,
    ssl_fd: int,
    web: WebPair,
    cert_file: Path,
    key_file: Path | None,
    chain_file: Path | None,
) -> Installed:
    """``web install``'s change: check the signed certificate with the reconcile's own trust and policy
    rules, then put it in place (the writer lock held by the caller)."""
    with _write_errors_named(ssl_dir, "nothing installed"):
        key_path = key_file or ssl_dir / web.pending_key
        pending = _load(key_file, "--key") if key_file is not None else read_here(ssl_fd, web.pending_key, ssl_dir)
        if pending is None:
            raise CommandError(f"{key_path}: no key to go with the certificate (run `web csr` first, or give --key)")
        try:
            key: PrivateKey = parse_private_key(pending, str(key_path))
            certs = parse_certificates(_load(cert_file, "--cert"), str(cert_file))
            if chain_file is not None:
                certs += parse_certificates(_load(chain_file, "--chain"), str(chain_file))
        except SourceError as exc:
            raise CommandError(str(exc.finding)) from None
        return _install_checked(ssl_dir, ssl_fd, web, key, certs, str(cert_file), str(key_path), key_file is None)


def install_data_at(
    ssl_dir: Path, ssl_fd: int, web: WebPair, cert_data: bytes, key_data: bytes, display: str
) -> Installed:
    """``install_at`` for a pair held in memory (``acme renew``'s): no file but the ssl dir's is written,
    so no work directory anyone else could swap (the key never leaves memory before it is installed)."""
    with _write_errors_named(ssl_dir, "nothing installed"):
        try:
            key = parse_private_key(key_data, f"{display} (key)")
            certs = parse_certificates(cert_data, display)
        except SourceError as exc:
            raise CommandError(str(exc.finding)) from None
        return _install_checked(ssl_dir, ssl_fd, web, key, certs, display, f"{display} (key)", False)


def _install_checked(
    ssl_dir: Path,
    ssl_fd: int,
    web: WebPair,
    key: PrivateKey,
    certs: list[x509.Certificate],
    cert_file: str,
    key_path: str,
    from_pending: bool,
) -> Installed:
    try:
        chain, _extra = verify.order_chain(key, certs, cert_file, key_path)
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None
    now = dt.datetime.now(dt.UTC)
    for cert in chain:
        problems = verify.validity_findings(cert, str(cert_file), now, 0)
        if problems:
            raise CommandError(f"{problems[0]}; nothing installed")
    anchors = trust.Anchors.of(_authority_certs(ssl_fd, web.trust_sources))
    verdict = judge_chain(chain, anchors, now, str(cert_file), web.purposes, web.lowered)
    if verdict.refusal is not None:
        raise CommandError(f"{verdict.refusal}; nothing installed")
    _keep_previous(ssl_dir, ssl_fd, web)
    # both or neither: a write error after the key is written must not leave it beside the old certificate
    replace_together_at(
        ssl_fd, [(web.key, key_pem(key), 0o600), (web.crt, cert_pem(*chain), 0o644)], *owner_for_new_files(ssl_fd)
    )
    if from_pending:
        _remove_here(ssl_fd, web.pending_key)
    subject = chain[0].subject.rfc4514_string()
    if verdict.verified:
        return Installed(f"installed {subject} (verified against its issuer)", True)
    issuer = chain[-1].issuer.rfc4514_string()
    return Installed(
        f"installed {subject} UNVERIFIED: its issuer ({issuer}) is not in {', '.join(web.trust_sources)}; it will "
        "be verified once that CA certificate is put there",
        False,
    )


def _keep_previous(ssl_dir: Path, ssl_fd: int, web: WebPair) -> None:
    """Copy the current web pair aside, read without following links (a link is refused, not copied)."""
    key, crt = read_here(ssl_fd, web.key, ssl_dir), read_here(ssl_fd, web.crt, ssl_dir)
    owner = owner_for_new_files(ssl_fd)
    if key is not None and crt is not None:
        replace_together_at(ssl_fd, [(web.previous_key, key, 0o600), (web.previous_crt, crt, 0o644)], *owner)
        _remove_here(ssl_fd, web.previous_was_fallback)
    else:  # the web stores were built from the fallback pair (a fresh install): that is what rollback restores
        atomic_write_at(ssl_fd, web.previous_was_fallback, b"", 0o644, *owner)
        for name in (web.previous_key, web.previous_crt):
            _remove_here(ssl_fd, name)


def rollback_at(ssl_dir: Path, ssl_fd: int, web: WebPair) -> str:
    """``web rollback``'s change (the writer lock held by the caller)."""
    with _write_errors_named(ssl_dir, "nothing rolled back"):
        old_key, old_crt = read_here(ssl_fd, web.previous_key, ssl_dir), read_here(ssl_fd, web.previous_crt, ssl_dir)
        if old_key is not None and old_crt is not None:
            _keep_previous(ssl_dir, ssl_fd, web)  # so a second rollback undoes the first
            owner = owner_for_new_files(ssl_fd)
            replace_together_at(ssl_fd, [(web.key, old_key, 0o600), (web.crt, old_crt, 0o644)], *owner)
            return f"restored the previous web pair ({ssl_dir / web.crt})"
        if lstat_at(ssl_fd, web.previous_was_fallback) is not None:
            _keep_previous(ssl_dir, ssl_fd, web)
            _remove_here(ssl_fd, web.previous_was_fallback)
            for name in (web.key, web.crt):
                _remove_here(ssl_fd, name)
            return f"removed the web pair: the web stores follow the {web.fallback} pair again, as before the install"
        raise CommandError(f"{ssl_dir}: no previous web pair to restore")
