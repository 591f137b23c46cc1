"""The web-certificate workflow's writes: installing what an outside CA (or ACME) signed, rolling back.

Each runs as a command's change inside ``Reconciler.run`` (the writer lock held, relative to the ssl dir's
descriptor), so the stores are rebuilt from the new pair in the same lock session. The files are the
desired state's web pair (cluster/layout.py; ``web csr`` is cluster/webcsr.py). ``install`` checks the
signed certificate against the pending key (or a given one), judges its chain with the one verdict
(pki/verdict.py) for the pair's own TLS purposes against the CAs the reconcile trusts (read and judged
by the reconcile's own code, so the two never disagree), and installs it unverified when its issuer is not
there, as sipXecs does (a self-signed certificate, or one whose root only came with it, is unverified); the
current pair, when its key matches its certificate, is kept as ``<key>.previous``/``<cert>.previous`` so
``rollback`` can put it back. Once the new pair is in place the change returns normally (what is left,
e.g. a pending key that cannot be removed, is a note), so the reconcile that follows always runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from sslreconciler.cluster.layout import WebPair
from sslreconciler.config.desired import DesiredState
from sslreconciler.config.pair_model import WEB_PAIR
from sslreconciler.fsio import (
    MAX_SOURCE_BYTES,
    atomic_write_at,
    lstat_at,
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
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.observe import gather_inputs
from sslreconciler.reconcile.system_anchors import SYSTEM_TRUST, system_anchors
from sslreconciler.reconcile.trust_files import load_trust


def _load(path: Path, what: str) -> bytes:
    try:
        data, _ = read_source(path, str(path), [path.parent])
    except SourceError as exc:
        raise CommandError(f"{what}: {exc.finding}") from None
    return data


def _trusted_anchors(
    ssl_dir: Path, ssl_fd: int, desired: DesiredState, now: dt.datetime
) -> tuple[trust.Anchors, trust.Anchors | None]:
    """The CAs the reconcile itself trusts: its own reading of the trust sources (links into the allowed
    directories followed, as it follows them) and its own trust rules, on the same descriptor; and the
    system trust store's roots when the web pair's ``verify_with`` names it (None otherwise)."""
    inputs, _ = gather_inputs(ssl_dir, desired, ssl_fd)
    facts = CertFacts()
    web = next((p for p in desired.pairs if p.name == WEB_PAIR), None)
    ways = web.verifies_with if web is not None else frozenset({"trust-sources"})
    anchors = load_trust(inputs, desired, now, facts).anchors if "trust-sources" in ways else trust.Anchors()
    return anchors, (system_anchors(inputs, facts) if "system" in ways else None)


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
    desired: DesiredState,
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
        checked = _checked(ssl_dir, ssl_fd, web, desired, key, certs, str(cert_file), str(key_path))
        notes = _put_in_place(ssl_dir, ssl_fd, web, key, checked.chain)
    if key_file is None:  # the new pair is in place: what is left is a note, so the reconcile still runs
        notes += _removed_best_effort(ssl_dir, ssl_fd, web.pending_key)
    return _installed(web, checked, notes)


def install_data_at(
    ssl_dir: Path, ssl_fd: int, web: WebPair, desired: DesiredState, cert_data: bytes, key_data: bytes, display: str
) -> Installed:
    """``install_at`` for a pair held in memory (``acme renew``'s): no file but the ssl dir's is written,
    so no work directory anyone else could swap (the key never leaves memory before it is installed)."""
    with _write_errors_named(ssl_dir, "nothing installed"):
        try:
            key = parse_private_key(key_data, f"{display} (key)")
            certs = parse_certificates(cert_data, display)
        except SourceError as exc:
            raise CommandError(str(exc.finding)) from None
        checked = _checked(ssl_dir, ssl_fd, web, desired, key, certs, display, f"{display} (key)")
        notes = _put_in_place(ssl_dir, ssl_fd, web, key, checked.chain)
    return _installed(web, checked, notes)


@dataclass(frozen=True, slots=True)
class _Checked:
    chain: list[x509.Certificate]
    verified: bool
    trust: str = ""  # the verdict's words: "verified", "verified via system trust: CN=..."


def _checked(
    ssl_dir: Path,
    ssl_fd: int,
    web: WebPair,
    desired: DesiredState,
    key: PrivateKey,
    certs: list[x509.Certificate],
    cert_file: str,
    key_path: str,
) -> _Checked:
    """The chain to install and its verdict; CommandError (nothing written) when it is refused."""
    try:
        chain, _extra = verify.order_chain(key, certs, cert_file, key_path)
    except SourceError as exc:
        raise CommandError(str(exc.finding)) from None
    now = dt.datetime.now(dt.UTC)
    for cert in chain:
        problems = verify.validity_findings(cert, str(cert_file), now, 0)
        if problems:
            raise CommandError(f"{problems[0]}; nothing installed")
    anchors, system = _trusted_anchors(ssl_dir, ssl_fd, desired, now)
    verdict = judge_chain(chain, anchors, now, str(cert_file), web.purposes, web.lowered, extra=system)
    if verdict.refusal is not None:
        raise CommandError(f"{verdict.refusal}; nothing installed")
    return _Checked(chain, verdict.verified, verdict.trust)


def _put_in_place(ssl_dir: Path, ssl_fd: int, web: WebPair, key: PrivateKey, chain: list[x509.Certificate]) -> str:
    """Keep the current pair aside, then replace it; the notes on what was kept."""
    notes = _keep_previous(ssl_dir, ssl_fd, web)
    # both or neither: a write error after the key is written must not leave it beside the old certificate
    replace_together_at(
        ssl_fd, [(web.key, key_pem(key), 0o600), (web.crt, cert_pem(*chain), 0o644)], *owner_for_new_files(ssl_fd)
    )
    return notes


def _removed_best_effort(ssl_dir: Path, ssl_fd: int, name: str) -> str:
    try:
        _remove_here(ssl_fd, name)
    except OSError as exc:
        return f"; {ssl_dir / name} could not be removed ({exc.strerror or exc}): remove it by hand"
    return ""


def _installed(web: WebPair, checked: _Checked, notes: str) -> Installed:
    chain = checked.chain
    subject = chain[0].subject.rfc4514_string()
    if checked.verified:
        via = (
            checked.trust if checked.trust.startswith(f"verified via {SYSTEM_TRUST}") else "verified against its issuer"
        )
        return Installed(f"installed {subject} ({via}){notes}", True)
    issuer = chain[-1].issuer.rfc4514_string()
    return Installed(
        f"installed {subject} UNVERIFIED: its issuer ({issuer}) is not in {', '.join(web.trust_sources)}; it will "
        f"be verified once that CA certificate is put there{notes}",
        False,
    )


def _matching(key: bytes, crt: bytes) -> bool:
    """Whether a pair's key goes with its certificate (one a crash left half-replaced does not)."""
    try:
        return verify.key_matches(parse_private_key(key, "key"), parse_certificates(crt, "certificate")[0])
    except SourceError:
        return False


def _keep_previous(ssl_dir: Path, ssl_fd: int, web: WebPair) -> str:
    """Copy the current web pair aside, read without following links (a link is refused, not copied);
    the notes on what was not kept. A pair whose key does not match its certificate (a crash between the
    two renames) is not kept: the ``.previous`` pair already there is the one rollback must restore."""
    key, crt = read_here(ssl_fd, web.key, ssl_dir), read_here(ssl_fd, web.crt, ssl_dir)
    owner = owner_for_new_files(ssl_fd)
    if key is not None and crt is not None:
        if not _matching(key, crt):
            return (
                f"; the pair in place ({ssl_dir / web.crt}) was not kept as the previous one: its key does not "
                "match its certificate (an interrupted install?), the previous pair stays as it was"
            )
        replace_together_at(ssl_fd, [(web.previous_key, key, 0o600), (web.previous_crt, crt, 0o644)], *owner)
        if web.fallback is not None:
            _remove_here(ssl_fd, web.previous_was_fallback)
        return ""
    # the web stores were built from the fallback pair (a fresh install): that is what rollback restores;
    # with no fallback there is nothing to go back to, and no marker says there is
    if web.fallback is not None:
        atomic_write_at(ssl_fd, web.previous_was_fallback, b"", 0o644, *owner)
    for name in (web.previous_key, web.previous_crt):
        _remove_here(ssl_fd, name)
    return ""


def rollback_at(ssl_dir: Path, ssl_fd: int, web: WebPair) -> str:
    """``web rollback``'s change (the writer lock held by the caller)."""
    with _write_errors_named(ssl_dir, "nothing rolled back"):
        old_key, old_crt = read_here(ssl_fd, web.previous_key, ssl_dir), read_here(ssl_fd, web.previous_crt, ssl_dir)
        if old_key is not None and old_crt is not None:
            notes = _keep_previous(ssl_dir, ssl_fd, web)  # so a second rollback undoes the first
            owner = owner_for_new_files(ssl_fd)
            replace_together_at(ssl_fd, [(web.key, old_key, 0o600), (web.crt, old_crt, 0o644)], *owner)
            return f"restored the previous web pair ({ssl_dir / web.crt}){notes}"
        if web.fallback is not None and lstat_at(ssl_fd, web.previous_was_fallback) is not None:
            _keep_previous(ssl_dir, ssl_fd, web)
            _remove_here(ssl_fd, web.previous_was_fallback)
            for name in (web.key, web.crt):
                _remove_here(ssl_fd, name)
            return f"removed the web pair: the web stores follow the {web.fallback} pair again, as before the install"
        if web.fallback is None and lstat_at(ssl_fd, web.key) is not None:
            raise CommandError(
                f"{ssl_dir}: no previous web pair to restore, and the desired state gives the web pair no fallback "
                "(fallback: null): removing it would leave the web stores with no pair; nothing changed"
            )
        raise CommandError(f"{ssl_dir}: no previous web pair to restore")
