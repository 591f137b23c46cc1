"""Trusted files -> the truststore's aliases and entries and each trust directory's hash links. Pure.

A truststore alias is the file name without its extension, lower-cased as Java's JKS does
(model/jks_alias.py: a JKS stores and looks up ``alias.toLowerCase(Locale.ENGLISH)``); a
file's n-th certificate goes in as ``<alias>-<n>``. Hash links follow ``openssl rehash``: one
``<subject hash>.N`` link per single-certificate PEM file, numbered in file-name order, and a
certificate two files hold goes in (and gets a link) once.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from sslreconciler.model.findings import Finding, FindingCode, error, warning
from sslreconciler.model.jks_alias import alias_unfit as _unfit
from sslreconciler.model.jks_alias import java_lower
from sslreconciler.pki import trust as rules
from sslreconciler.reconcile.file_facts import CertFact
from sslreconciler.stores.entries import cert_der


@dataclass(slots=True)
class TrustFile:
    """One parsed trust file."""

    link_dir: str  # the trust directory whose hash links it gets ("" for a single-file source)
    display: str
    certs: list[CertFact]
    is_der: bool
    is_ca: bool = False  # every certificate shaped as a CA: trusted as it is
    alias: str = ""  # alias_of(display), worked out once

    def __post_init__(self) -> None:
        if not self.alias:
            self.alias = alias_of(self.display)


@dataclass(slots=True)
class HostCerts:
    """This host's own certificate file: the CA that issued it is the cluster CA, which keeps its place."""

    certs: list[x509.Certificate]

    def issued_by(self, f: TrustFile) -> bool:
        """A certificate of ``f`` is this host's, or names and signs it (parsed only then)."""
        return any(
            cert_der(h) == c.der or (h.issuer.public_bytes() == c.subject and rules.signed_by(h, c.parse()))
            for c in f.certs
            for h in self.certs
        )


@dataclass(slots=True)
class TrustEntries:
    entries: dict[str, bytes] = field(default_factory=dict)  # alias -> DER
    owners: dict[str, str] = field(default_factory=dict)  # alias -> the trust file it came from
    links: dict[str, dict[str, str]] = field(default_factory=dict)  # per trust directory: link -> target
    findings: list[Finding] = field(default_factory=list)
    next_link: dict[str, dict[str, int]] = field(default_factory=dict)  # per trust directory: hash -> next N


def alias_of(display: str) -> str:
    name = display.rpartition("/")[2]
    dot = name.rfind(".")
    return java_lower(name[:dot] if 0 < dot < len(name) - 1 else name)  # PurePosixPath(display).stem, faster


def alias_unfit(alias: str) -> str:
    """Why a JKS cannot carry this alias portably (model/jks_alias.py), or empty."""
    unfit = _unfit(alias)
    return f"its alias {alias[:60]!r} {unfit}" if unfit else ""


def resolve_aliases(files: list[TrustFile], host: HostCerts) -> tuple[list[TrustFile], list[Finding]]:
    """One file per alias; the rest left out, each with a finding naming the file that keeps it (the one
    that issued this host's certificate, else the first)."""
    groups: dict[str, list[TrustFile]] = {}
    for f in files:
        groups.setdefault(f.alias, []).append(f)
    losers: set[str] = set()
    findings: list[Finding] = []
    for alias, group in groups.items():
        if len(group) == 1:
            continue
        winner = next((f for f in group if host.issued_by(f)), group[0])
        for f in group:
            if f is not winner:
                losers.add(f.display)
                text = (
                    f"alias {alias!r} is also {winner.display}'s (a truststore alias is the file name without "
                    "extension, lower-cased); left out, rename one of them"
                )
                findings.append(error(f.display, text, FindingCode.DUPLICATE_ALIAS))
    return [f for f in files if f.display not in losers], findings


def entries_and_links(
    accepted: list[TrustFile], link_dirs: Sequence[str], host: HostCerts, hash_links: bool
) -> TrustEntries:
    """The truststore's entries and, for each of ``link_dirs``, its hash links."""
    result = TrustEntries(links={d: {} for d in link_dirs})
    holders: dict[bytes, list[TrustFile]] = {}
    for f in accepted:
        for cert in f.certs:
            holders.setdefault(cert.der, []).append(f)
    owner = {d: next((f for f in fs if len(fs) > 1 and host.issued_by(f)), fs[0]) for d, fs in holders.items()}
    owned = {f.alias: f.display for f in accepted}
    used: set[str] = set()
    for f in accepted:
        alias = f.alias
        duplicates = []
        for i, cert in enumerate(f.certs):
            first = owner[cert.der]
            if first is not f:
                duplicates.append(first.display)
                continue
            name = alias if i == 0 else _suffix_alias(alias, i + 1, owned, used)
            if i and f"{alias}-{i + 1}" in owned:
                text = (
                    f"certificate #{i + 1} goes in as alias {name!r}: {alias}-{i + 1} is "
                    f"{owned[f'{alias}-{i + 1}']}'s alias"
                )
                result.findings.append(warning(f.display, text, FindingCode.ALIAS_SUFFIX))
            used.add(name)
            result.entries[name] = cert.der
            result.owners[name] = f.display
        if duplicates:
            text = (
                f"holds the same certificate as {duplicates[0]} (openssl rehash: duplicate certificate); "
                "it goes into the truststore and the hash links once, from that file"
            )
            result.findings.append(warning(f.display, text, FindingCode.DUPLICATE_CERTIFICATE))
        if f.link_dir and hash_links and not duplicates:
            _link_or_why_not(f, result)
    return result


def _link_or_why_not(f: TrustFile, result: TrustEntries) -> None:
    """A hash link for a single-certificate PEM file; for any other, the finding that says why none."""
    if f.is_der:
        text = (
            "is DER: OpenSSL -CApath reads only PEM, so it gets no hash link; "
            "replace it with its PEM form (openssl x509 -inform der -in FILE -out FILE.pem)"
        )
        result.findings.append(warning(f.display, text, FindingCode.NO_HASH_LINK))
    elif len(f.certs) != 1:
        text = (
            f"holds {len(f.certs)} certificates: like openssl rehash, no hash link is made for it, "
            "so OpenSSL -CApath does not see them; give each certificate its own file"
        )
        result.findings.append(warning(f.display, text, FindingCode.NO_HASH_LINK))
    else:
        numbers = result.next_link.setdefault(f.link_dir, {})
        _add_link(result.links[f.link_dir], f.certs[0].subject_hash, f.display.rpartition("/")[2], numbers)


def _suffix_alias(alias: str, n: int, owned: Container[str], used: set[str]) -> str:
    """``<alias>-<n>`` for the n-th certificate of a file, never an alias another file owns."""
    candidate, k = f"{alias}-{n}", 2
    while candidate in owned or candidate in used:
        candidate, k = f"{alias}-{n}-{k}", k + 1
    return candidate


def _add_link(links: dict[str, str], digest: str, target: str, numbers: dict[str, int] | None = None) -> None:
    """c_rehash numbering: <hash>.0, .1 ... in file-name order (callers go in that order). ``numbers``: the
    next free N per hash, kept by the caller, so n files of one subject cost n steps, not n²/2."""
    n = numbers.get(digest, 0) if numbers is not None else 0
    while f"{digest}.{n}" in links:
        n += 1
    links[f"{digest}.{n}"] = target
    if numbers is not None:
        numbers[digest] = n + 1
