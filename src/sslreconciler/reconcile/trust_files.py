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
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.file_facts import AnalyzeItem, CertFact, FileFacts, analyze_all, policy_key
from sslreconciler.reconcile.report import CertInfo
from sslreconciler.reconcile.stat_index import IndexEntry, StatIndex
from sslreconciler.reconcile.state import Inputs, source_bytes
from sslreconciler.reconcile.trust_entries import (
    HostCerts,
    TrustFile,
    alias_of,
    alias_unfit,
    entries_and_links,
    resolve_aliases,
)

Parsed = tuple[x509.Certificate, list[x509.Certificate]]  # a chain parsed only when its verdict is not known
Slot = tuple[str, str, "FileFacts | int | Finding"]  # a trust file: link dir, display, and its facts (or why none)


@dataclass(slots=True)
class TrustResult:
    entries: dict[str, bytes] = field(default_factory=dict)  # alias -> DER
    anchors: rules.Anchors = field(default_factory=rules.Anchors)
    # per trust directory: link name -> target file name
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    parsed: list[tuple[str, CertInfo]] = field(default_factory=list)  # (file, report entry) per certificate
    owners: dict[str, str] = field(default_factory=dict)  # alias -> the trust file it came from
    findings: list[Finding] = field(default_factory=list)
    subjects: dict[bytes, str] = field(default_factory=dict)  # DER -> the certificate's subject, for messages


def load_trust(inputs: Inputs, desired: DesiredState, now: dt.datetime, facts: CertFacts) -> TrustResult:
    """Judge every trust file from its facts: what is trusted, under which alias, with which hash links."""
    warn_days = desired.expiry_warning_days
    files, findings = _analyzed_files(inputs, desired, facts)
    parsed_files = {f.display for f in files}
    sources = tuple(f.display for f in files) + tuple(
        f for t in inputs.trust_dirs for f in t.files if f not in parsed_files
    )
    candidates = []
    for f in files:
        f.is_ca = all(c.is_ca for c in f.certs)
        problems = _trust_file_findings(f, now, warn_days)
        findings.extend(problems)
        if not any(p.level is Level.ERROR for p in problems):
            candidates.append(f)
    host = HostCerts(_host_certs(inputs, desired, facts))
    kept, clashes = resolve_aliases(candidates, host)
    findings.extend(clashes)
    anchors = rules.Anchors()
    for f in kept:
        if f.is_ca:
            for c in f.certs:
                anchors.add_der(c.subject, c.der)
    if desired.truststore.hash_links:
        findings.extend(_partial_chain_findings(kept, anchors))
    accepted, verdicts = _verified_files(kept, anchors, now, warn_days, facts)
    findings.extend(verdicts)
    link_dirs = [t.display for t in inputs.trust_dirs if t.is_dir]
    trusted = entries_and_links(accepted, link_dirs, host, desired.truststore.hash_links)
    findings.extend(trusted.findings)
    parsed = [(f.display, c.info) for f in files for c in f.certs]
    subjects = {c.der: c.describe for f in accepted for c in f.certs}
    return TrustResult(trusted.entries, anchors, trusted.links, sources, parsed, trusted.owners, findings, subjects)


def _analyzed_files(inputs: Inputs, desired: DesiredState, facts: CertFacts) -> tuple[list[TrustFile], list[Finding]]:
    """Every trust file that can be read and parsed and whose alias a JKS can hold, in directory order: its
    facts from the stat index (observe) or from its bytes (``analyze_all``, the one place files are
    analyzed). The stat index is replaced by what this run saw (when observe kept stats)."""
    policy = policy_key(desired.policy.lowered)
    slots: list[Slot] = []  # in directory order: (link dir, display, facts, index into items, or why neither)
    items: list[AnalyzeItem] = []
    for trust_dir in inputs.trust_dirs:
        link_dir = trust_dir.display if trust_dir.is_dir else ""
        for display in trust_dir.files:
            source = inputs.files.get(display)
            known = source.facts if source is not None else None
            data = b"" if known is not None else source_bytes(source, display)
            if isinstance(data, Finding):
                slots.append((link_dir, display, data))
                continue
            unfit = alias_unfit(alias_of(display))
            if unfit:
                slots.append(
                    (link_dir, display, error(display, f"is left out: {unfit}; rename the file", FindingCode.BAD_NAME))
                )
                continue
            if known is None:
                items.append((display, data, policy))
            slots.append((link_dir, display, known if known is not None else len(items) - 1))
    analyzed = analyze_all(items, facts.map)
    files: list[TrustFile] = []
    findings: list[Finding] = []
    for link_dir, display, slot in slots:
        got = analyzed[slot] if isinstance(slot, int) else slot
        problem = got if isinstance(got, Finding) else got.problem
        if problem is not None:
            findings.append(problem)
            continue
        assert isinstance(got, FileFacts)
        files.append(TrustFile(link_dir, display, list(got.certs), got.is_der))
    if inputs.stat_taken_ns:
        facts.memo.stat_index = next_index(facts.memo.stat_index, inputs, slots, analyzed)
    return files, findings


def next_index(old: StatIndex, inputs: Inputs, slots: list[Slot], analyzed: list[FileFacts]) -> StatIndex:
    """The index of this run's trust files: the old one as it is when every file was proved unchanged by it
    (so a no-op writes nothing), else a new one taken at this run's moment. Only the current files."""
    entries: dict[str, IndexEntry] = {}
    for _, display, slot in slots:
        source = inputs.files.get(display)
        if source is None:
            continue
        got = analyzed[slot] if isinstance(slot, int) else slot
        if source.stat is not None and isinstance(got, FileFacts) and got.problem is None:
            previous = old.entries.get(display)
            same = previous is not None and previous.facts is got and previous.stat == source.stat
            entries[display] = previous if same and previous is not None else IndexEntry(source.stat, got)
    if entries.keys() == old.entries.keys() and all(entries[d] is old.entries[d] for d in entries):
        return old
    return StatIndex(inputs.stat_taken_ns, entries)


def _verified_files(
    kept: list[TrustFile], anchors: rules.Anchors, now: dt.datetime, warn_days: int, facts: CertFacts
) -> tuple[list[TrustFile], list[Finding]]:
    """The files trusted: each CA file, and each other file whose leaf verifies against the anchors."""
    anchors_key = facts.anchors_key(anchors)  # once: every leaf is checked against the same anchors
    accepted: list[TrustFile] = []
    findings: list[Finding] = []
    for f in kept:
        if f.is_ca:
            accepted.append(f)
            continue
        leaf = next(c for c in f.certs if not c.is_ca)
        others = [c for c in f.certs if c is not leaf]

        def parse(leaf: CertFact = leaf, others: list[CertFact] = others) -> Parsed:
            return leaf.parse(), [c.parse() for c in others]

        checked = facts.verified_ders([c.der for c in (leaf, *others)], anchors, now, anchors_key, parse)
        if not checked.ok:
            text = f"is not signed by a CA in the trust sources: {checked.detail}"
            findings.append(error(f.display, text, FindingCode.UNTRUSTED))
            continue
        findings.extend(leaf.validity_at(f.display, now, warn_days))
        accepted.append(f)
    return accepted, findings


def _partial_chain_findings(files: list[TrustFile], anchors: rules.Anchors) -> list[Finding]:
    """A CA that is no root and whose issuer is not here: an anchor for Java and for this check, but
    ``openssl verify -CApath`` (without -partial_chain) wants the chain up to a self-signed root."""
    out = []
    for f in files:
        if not f.is_ca:
            continue
        for fact in f.certs:
            if fact.self_signed:
                continue
            issuers = [i for i in anchors.issuers_named(fact.issuer) if rules.der(i) != fact.der]
            if issuers:
                cert = fact.parse()  # a CA that is no root: the one rule here that checks a signature
                if any(rules.signed_by(cert, i) for i in issuers):
                    continue
            text = (
                f"{fact.describe} is not a self-signed root and its issuer "
                f"({fact.info.issuer}) is not in the trust sources: it is trusted here and by Java, "
                "but openssl verify -CApath stops at it; add its root"
            )
            out.append(warning(f.display, text, FindingCode.PARTIAL_CHAIN))
            break
    return out


def _trust_file_findings(f: TrustFile, now: dt.datetime, warn_days: int) -> list[Finding]:
    """What is wrong with a trust file on its own: validity of a CA, a CA that cannot issue, policy."""
    out: list[Finding] = []
    for cert in f.certs:
        out.extend(cert.key_findings)
        if f.is_ca:
            out.extend(cert.validity_at(f.display, now, warn_days))
            if cert.anchor_problem:
                text = f"{cert.describe} {cert.anchor_problem}: it cannot issue, so it is not trusted"
                out.append(error(f.display, text, FindingCode.NOT_A_CA))
        elif cert.signature_findings and not cert.self_signed:
            out.extend(cert.signature_findings)  # a self-signature carries no trust, so its hash is no weakness
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
