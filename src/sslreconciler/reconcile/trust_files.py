"""The trust sources -> which files are trusted: the anchors, the truststore's entries, the hash links,
and the findings. Pure: no I/O.

A CA certificate is an anchor as it is; any other certificate must verify against the anchors. Aliases
are decided before anchors: a file whose alias clashes with another's is left out altogether (never
trusted behind the report's back), the one that issued this host's certificate keeping its place.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509

from sslreconciler.config.desired import DesiredState
from sslreconciler.model.findings import Finding, FindingCode, Level, SourceError, error, warning
from sslreconciler.pki import trust as rules
from sslreconciler.pki import verify
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.prime import prime
from sslreconciler.reconcile.state import Inputs, source_bytes
from sslreconciler.reconcile.trust_entries import (
    HostCerts,
    TrustFile,
    alias_of,
    alias_unfit,
    entries_and_links,
    resolve_aliases,
)


@dataclass(slots=True)
class TrustResult:
    entries: dict[str, bytes] = field(default_factory=dict)  # alias -> DER
    anchors: rules.Anchors = field(default_factory=rules.Anchors)
    # per trust directory: link name -> target file name
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    parsed: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # alias -> the trust file it came from
    findings: list[Finding] = field(default_factory=list)


def load_trust(inputs: Inputs, desired: DesiredState, now: dt.datetime, facts: CertFacts) -> TrustResult:
    """Parse and judge every trust file: what is trusted, under which alias, with which hash links."""
    warn_days, lowered = desired.expiry_warning_days, desired.policy.lowered
    files, findings = _parsed_files(inputs, facts)
    prime(facts, [cert for f in files for cert in f.certs])  # first-sight facts on every core (prime.py)
    parsed_files = {f.display for f in files}
    sources = tuple(f.display for f in files) + tuple(
        f for t in inputs.trust_dirs for f in t.files if f not in parsed_files
    )
    candidates = []
    for f in files:
        f.is_ca = all(facts.is_ca(c) for c in f.certs)
        problems = _trust_file_findings(f, now, warn_days, lowered, facts)
        findings.extend(problems)
        if not any(p.level is Level.ERROR for p in problems):
            candidates.append(f)
    host = HostCerts(_host_certs(inputs, desired, facts))
    kept, clashes = resolve_aliases(candidates, host)
    findings.extend(clashes)
    anchors = rules.Anchors.of([c for f in kept if f.is_ca for c in f.certs])
    if desired.truststore.hash_links:
        findings.extend(_partial_chain_findings(kept, anchors, facts))
    accepted, verdicts = _verified_files(kept, anchors, now, warn_days, facts)
    findings.extend(verdicts)
    link_dirs = [t.display for t in inputs.trust_dirs if t.is_dir]
    trusted = entries_and_links(accepted, link_dirs, host, desired.truststore.hash_links, facts)
    findings.extend(trusted.findings)
    parsed = [(f.display, cert) for f in files for cert in f.certs]
    return TrustResult(trusted.entries, anchors, trusted.links, sources, parsed, trusted.owners, findings)


def _parsed_files(inputs: Inputs, facts: CertFacts) -> tuple[list[TrustFile], list[Finding]]:
    """Every trust file that can be read and parsed and whose alias a JKS can hold, in directory order."""
    files: list[TrustFile] = []
    findings: list[Finding] = []
    for trust_dir in inputs.trust_dirs:
        for display in trust_dir.files:
            data = source_bytes(inputs.files.get(display), display)
            if isinstance(data, Finding):
                findings.append(data)
                continue
            unfit = alias_unfit(alias_of(display))
            if unfit:
                findings.append(error(display, f"is left out: {unfit}; rename the file", FindingCode.BAD_NAME))
                continue
            try:
                certs = facts.certificates(data, display)
            except SourceError as exc:
                findings.append(exc.finding)
                continue
            link_dir = trust_dir.display if trust_dir.is_dir else ""
            files.append(TrustFile(link_dir, display, certs, b"-----BEGIN " not in data))
    return files, findings


def _verified_files(
    kept: list[TrustFile], anchors: rules.Anchors, now: dt.datetime, warn_days: int, facts: CertFacts
) -> tuple[list[TrustFile], list[Finding]]:
    """The files trusted: each CA file, and each other file whose leaf verifies against the anchors."""
    anchors_key = facts.anchors_key(anchors.certs)  # once: every leaf is checked against the same anchors
    accepted: list[TrustFile] = []
    findings: list[Finding] = []
    for f in kept:
        if f.is_ca:
            accepted.append(f)
            continue
        leaf = next(c for c in f.certs if not facts.is_ca(c))
        others = [c for c in f.certs if c is not leaf]
        checked = facts.verified(leaf, others, anchors, now, anchors_key)
        if not checked.ok:
            text = f"is not signed by a CA in the trust sources: {checked.detail}"
            findings.append(error(f.display, text, FindingCode.UNTRUSTED))
            continue
        findings.extend(verify.validity_findings(leaf, f.display, now, warn_days))
        accepted.append(f)
    return accepted, findings


def _partial_chain_findings(files: list[TrustFile], anchors: rules.Anchors, facts: CertFacts) -> list[Finding]:
    """A CA that is no root and whose issuer is not here: an anchor for Java and for this check, but
    ``openssl verify -CApath`` (without -partial_chain) wants the chain up to a self-signed root."""
    out = []
    for f in files:
        if not f.is_ca or not f.link_dir:
            continue
        for cert in f.certs:
            if facts.self_signed(cert) or any(
                rules.signed_by(cert, issuer) for issuer in anchors.issuers_of(cert) if issuer is not cert
            ):
                continue
            text = (
                f"{verify.describe(cert)} is not a self-signed root and its issuer "
                f"({cert.issuer.rfc4514_string()}) is not in the trust sources: it is trusted here and by Java, "
                "but openssl verify -CApath stops at it; add its root"
            )
            out.append(warning(f.display, text, FindingCode.PARTIAL_CHAIN))
            break
    return out


def _trust_file_findings(
    f: TrustFile, now: dt.datetime, warn_days: int, lowered: frozenset[str], facts: CertFacts
) -> list[Finding]:
    """What is wrong with a trust file on its own: validity of a CA, a CA that cannot issue, policy."""
    out: list[Finding] = []
    for cert in f.certs:
        out.extend(rules.key_findings(cert, f.display, lowered))
        if f.is_ca:
            out.extend(verify.validity_findings(cert, f.display, now, warn_days))
            problem = rules.anchor_problem(cert)
            if problem:
                text = f"{verify.describe(cert)} {problem}: it cannot issue, so it is not trusted"
                out.append(error(f.display, text, FindingCode.NOT_A_CA))
        elif (weak := rules.signature_findings(cert, f.display, lowered)) and not facts.self_signed(cert):
            out.extend(weak)  # a self-signature carries no trust, so its hash is no weakness
    return out


def _host_certs(inputs: Inputs, desired: DesiredState, facts: CertFacts) -> list[x509.Certificate]:
    """This host's certificates (its pair's, or its fallback's), if they parse."""
    if desired.truststore.host_pair is None:
        return []
    pair = desired.pair(desired.truststore.host_pair)
    for name in (pair.cert, *((desired.pair(pair.fallback).cert,) if pair.fallback else ())):
        source = inputs.files.get(name)
        if source is not None and source.data is not None:
            try:
                return facts.certificates(source.data, name)
            except SourceError:
                return []
    return []
