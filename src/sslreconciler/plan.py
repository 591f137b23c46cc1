"""Sources + desired state -> the entries each artifact must hold, and the findings. Pure: no I/O.

An artifact whose sources are bad gets no content (``blocked``): apply then keeps what is on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import ClientVerifier

from sslreconciler.cache import ReconcileCache, memoised
from sslreconciler.desired import DesiredState, KeyPair
from sslreconciler.findings import Finding, Level, SourceError, error, warning
from sslreconciler.inputs import Inputs, SourceFile
from sslreconciler.pki import verify
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key
from sslreconciler.pki.subject_hash import subject_hash
from sslreconciler.stores.entries import KeyEntry, StoreContent, cert_der, key_pkcs8

ArtifactKind = Literal["jks", "pkcs12", "truststore"]


@dataclass(slots=True)
class ArtifactPlan:
    name: str
    kind: ArtifactKind
    mode: int
    sources: tuple[str, ...]  # displays of the files it derives from
    content: StoreContent | None = None  # None: blocked by bad sources
    password: str | None = field(default=None, repr=False)
    profile: Literal["modern", "legacy"] = "modern"
    blocked_by: str = ""
    note: str = ""  # e.g. "from the ssl pair", "unverified"


@dataclass(slots=True)
class PairResult:
    pair: KeyPair
    sources: tuple[str, ...]
    key: PrivateKey | None = field(default=None, repr=False)
    chain: list[x509.Certificate] = field(default_factory=list)
    ok: bool = False
    trust: str = ""  # verified / unverified / ...
    fallback_from: str | None = None


@dataclass(slots=True)
class TrustResult:
    entries: dict[str, bytes] = field(default_factory=dict)  # alias -> DER
    anchors: list[x509.Certificate] = field(default_factory=list)
    # per trust directory: link name -> target file name
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    parsed: list[tuple[str, x509.Certificate]] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    artifacts: list[ArtifactPlan]
    findings: list[Finding]
    pairs: dict[str, PairResult]
    links: dict[str, dict[str, str]]
    hostname: str
    certificates: list[tuple[str, x509.Certificate]] = field(default_factory=list)  # (file, cert) parsed


def _alias_of(display: str) -> str:
    return PurePosixPath(display).stem.lower()


def _usable(file: SourceFile | None, display: str, findings: list[Finding]) -> bytes | None:
    if file is None or not file.present:
        findings.append(error(display, "is missing", "missing"))
        return None
    if file.problem is not None:
        findings.append(file.problem)
        return None
    return file.data


def _load_trust(
    inputs: Inputs, now: dt.datetime, warn_days: int, findings: list[Finding], cache: ReconcileCache | None
) -> TrustResult:
    """Parse every trust file: CAs become anchors; other certificates must be signed by one of them."""
    result = TrustResult()
    parsed: list[tuple[str, str, list[x509.Certificate]]] = []  # (trust dir, display, certs)
    for trust_dir in inputs.trust_dirs:
        if trust_dir.is_dir:
            result.links.setdefault(trust_dir.display, {})
        for display in trust_dir.files:
            data = _usable(inputs.files.get(display), display, findings)
            if data is None:
                continue
            try:
                parsed.append(
                    (trust_dir.display if trust_dir.is_dir else "", display, _parse_certs(data, display, cache))
                )
            except SourceError as exc:
                findings.append(exc.finding)
    result.parsed = [(display, cert) for _, display, certs in parsed for cert in certs]
    parsed_files = {d for _, d, _ in parsed}
    result.sources = tuple(d for _, d, _ in parsed) + tuple(
        f for t in inputs.trust_dirs for f in t.files if f not in parsed_files
    )
    good_cas: list[x509.Certificate] = []
    ca_files: set[str] = set()
    all_ca = {display: all(verify.is_ca(c) for c in certs) for _, display, certs in parsed}
    for _, display, certs in parsed:
        if all_ca[display]:
            problems = [f for c in certs for f in verify.validity_findings(c, display, now, warn_days)]
            findings.extend(problems)
            if not any(p.level is Level.ERROR for p in problems):
                good_cas.extend(certs)
                ca_files.add(display)
    result.anchors = good_cas
    shared = verify.relaxed_verifier(good_cas, now) if good_cas else None  # one store for every leaf
    anchors_key = _anchors_key(good_cas) if cache is not None else b""
    by_subject: dict[bytes, list[x509.Certificate]] = {}
    for ca in good_cas:
        by_subject.setdefault(ca.subject.public_bytes(), []).append(ca)
    accepted: list[tuple[str, str, list[x509.Certificate]]] = []
    for link_dir, display, certs in parsed:
        if display in ca_files:
            accepted.append((link_dir, display, certs))
            continue
        if all_ca[display]:
            continue  # an expired or not-yet-valid CA, already reported
        leaf = next(c for c in certs if not verify.is_ca(c))
        others = [c for c in certs if c is not leaf]
        checked = _verified(leaf, others, good_cas, now, shared, cache, anchors_key, by_subject)
        if not checked.ok:
            findings.append(
                error(display, f"is not signed by a CA in the trust sources: {checked.detail}", "untrusted")
            )
            continue
        findings.extend(verify.validity_findings(leaf, display, now, warn_days))
        accepted.append((link_dir, display, certs))
    seen: dict[str, str] = {}
    for link_dir, display, certs in accepted:
        alias = _alias_of(display)
        if alias in seen:
            findings.append(
                error(display, f"alias {alias!r} is already taken by {seen[alias]}; left out", "duplicate-alias")
            )
            continue
        seen[alias] = display
        for i, cert in enumerate(certs):
            result.entries[alias if i == 0 else f"{alias}-{i + 1}"] = cert_der(cert)
        if link_dir and len(certs) == 1:
            _add_link(result.links[link_dir], _subject_hash(certs[0], cache), PurePosixPath(display).name, certs[0])
    return result


def _parse_certs(data: bytes, display: str, cache: ReconcileCache | None) -> list[x509.Certificate]:
    """parse_certificates, once per distinct content (a failure is never remembered)."""
    table = cache.certs if cache is not None else None
    return memoised(table, hashlib.sha256(data).digest(), lambda: parse_certificates(data, display))


def _subject_hash(cert: x509.Certificate, cache: ReconcileCache | None) -> str:
    table = cache.subject_hashes if cache is not None else None
    return memoised(table, cert.fingerprint(hashes.SHA256()), lambda: subject_hash(cert))


def _verified(
    leaf: x509.Certificate,
    others: list[x509.Certificate],
    anchors: list[x509.Certificate],
    now: dt.datetime,
    shared: ClientVerifier | None,
    cache: ReconcileCache | None,
    anchors_key: bytes = b"",
    by_subject: dict[bytes, list[x509.Certificate]] | None = None,
) -> verify.ChainResult:
    """verify_chain, remembering successes until a certificate in the chain crosses a validity bound.

    With ``by_subject`` (CAs by subject), a lone peer certificate is first checked by a direct
    signature of a CA here: "signed by a CA there" is exactly the question, at a fraction of the cost.
    """
    if cache is None:
        return _check_chain(leaf, others, anchors, now, shared, by_subject)
    chain_key = hashlib.sha256(b"".join(cert_der(c) for c in (leaf, *others))).digest()
    anchors_key = anchors_key or _anchors_key(anchors)
    known = cache.verdicts.get((chain_key, anchors_key))
    stamp = now.timestamp()
    if known is not None and known[1] <= stamp <= known[2]:
        return verify.ChainResult(True, known[0])
    checked = _check_chain(leaf, others, anchors, now, shared, by_subject)
    if checked.ok and checked.chain:
        start = max(c.not_valid_before_utc for c in checked.chain).timestamp()
        end = min(c.not_valid_after_utc for c in checked.chain).timestamp()
        cache.verdicts[(chain_key, anchors_key)] = (checked.detail, start, end)
    return checked


def _check_chain(
    leaf: x509.Certificate,
    others: list[x509.Certificate],
    anchors: list[x509.Certificate],
    now: dt.datetime,
    shared: ClientVerifier | None,
    by_subject: dict[bytes, list[x509.Certificate]] | None,
) -> verify.ChainResult:
    """A direct signature by a CA of the issuer's name when that is all there is; else path validation."""
    if by_subject is not None and not others and leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        for issuer in by_subject.get(leaf.issuer.public_bytes(), []):
            try:
                leaf.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
                return verify.ChainResult(True, "signed by a CA in the trust sources", (leaf, issuer))
    return verify.verify_chain(leaf, others, anchors, now, shared)


def _anchors_key(anchors: list[x509.Certificate]) -> bytes:
    return hashlib.sha256(b"".join(sorted(cert_der(a) for a in anchors))).digest()


def _add_link(links: dict[str, str], digest: str, target: str, cert: x509.Certificate) -> None:
    """c_rehash numbering: <hash>.0, .1 ... in file-name order (callers go in that order)."""
    n = 0
    while f"{digest}.{n}" in links:
        n += 1
    links[f"{digest}.{n}"] = target


def _pair_sources(pair: KeyPair, desired: DesiredState, inputs: Inputs) -> tuple[KeyPair, str | None, list[Finding]]:
    """The pair whose files to use: its own, or its fallback's when both of its own are absent."""
    key_file, cert_file = inputs.files.get(pair.key), inputs.files.get(pair.cert)
    key_present = key_file is not None and key_file.present
    cert_present = cert_file is not None and cert_file.present
    if not key_present and not cert_present and pair.fallback is not None:
        return desired.pair(pair.fallback), pair.fallback, []
    if key_present != cert_present:
        missing, there = (pair.cert, pair.key) if key_present else (pair.key, pair.cert)
        return pair, None, [error(missing, f"is missing ({there} is present): a pair needs both", "missing")]
    return pair, None, []


def _parse_key(data: bytes, display: str, cache: ReconcileCache | None) -> PrivateKey:
    """Parse (and check) a key once per distinct content; the cache only memoises."""
    key = cache.key(data) if cache is not None else None
    if key is None:
        key = parse_private_key(data, display)
        if cache is not None:
            cache.remember_key(data, key)
    return key


def _load_pair(
    pair: KeyPair,
    desired: DesiredState,
    inputs: Inputs,
    trust: TrustResult,
    hostname: str,
    now: dt.datetime,
    findings: list[Finding],
    cache: ReconcileCache | None,
) -> PairResult:
    source_pair, fallback_from, problems = _pair_sources(pair, desired, inputs)
    result = PairResult(pair, (source_pair.key, source_pair.cert), fallback_from=fallback_from)
    if problems:
        findings.extend(problems)
        return result
    own: list[Finding] = []
    key_data = _usable(inputs.files.get(source_pair.key), source_pair.key, own)
    cert_data = _usable(inputs.files.get(source_pair.cert), source_pair.cert, own)
    key_file = inputs.files.get(source_pair.key)
    if key_file is not None and key_file.data is not None and key_file.mode & 0o077:
        refuse = desired.permissions.key_source_readable_by_others == "refuse"
        text = f"is readable by group or others (mode {key_file.mode:04o}); make it 0600"
        own.append(error(source_pair.key, text, "key-mode") if refuse else warning(source_pair.key, text, "key-mode"))
    try:
        key = _parse_key(key_data, source_pair.key, cache) if key_data is not None else None
        certs = _parse_certs(cert_data, source_pair.cert, cache) if cert_data is not None else None
        if key is not None and certs is not None:
            chain, extra = verify.order_chain(key, certs, source_pair.cert, source_pair.key)
            own.extend(extra)
            result.key, result.chain = key, chain
    except SourceError as exc:
        own.append(exc.finding)
    if result.chain:
        warn_days = desired.expiry_warning_days
        for cert in result.chain:
            own.extend(verify.validity_findings(cert, source_pair.cert, now, warn_days))
        own.extend(verify.hostname_findings(result.chain[0], source_pair.cert, hostname))
        if not any(f.level is Level.ERROR for f in own):
            own.extend(_trust_findings(pair, result, trust, now))
    if fallback_from is None or pair.name == fallback_from:
        findings.extend(own)
    else:  # the fallback pair reports its own findings; repeat only what this pair's policy adds
        findings.extend(f for f in own if f.code in {"untrusted", "unverified"})
    result.ok = result.key is not None and bool(result.chain) and not any(f.level is Level.ERROR for f in own)
    return result


def _trust_findings(pair: KeyPair, result: PairResult, trust: TrustResult, now: dt.datetime) -> list[Finding]:
    display = result.sources[1]  # the certificate file actually used (the fallback's, if any)
    leaf, intermediates = result.chain[0], result.chain[1:]
    if pair.verify == "require" or verify.issuer_available(result.chain, trust.anchors):
        anchors = list(trust.anchors)
        if pair.verify == "if-available" and not any(a.subject == result.chain[-1].issuer for a in anchors):
            anchors.append(result.chain[-1])  # a self-signed root shipped inside the .crt
        checked = verify.verify_chain(leaf, intermediates, anchors, now)
        if not checked.ok:
            return [error(display, f"does not chain to a trusted CA: {checked.detail}", "untrusted")]
        result.trust = checked.detail
        return []
    link_problems = verify.links_findings(result.chain, display)
    if link_problems:
        return link_problems
    result.trust = "unverified"
    issuer = result.chain[-1].issuer.rfc4514_string()
    return [warning(display, f"unverified: its issuer ({issuer}) is not in the trust sources", "unverified")]


def _key_entry(result: PairResult) -> KeyEntry:
    assert result.key is not None
    return KeyEntry(result.pair.entry_alias, key_pkcs8(result.key), tuple(cert_der(c) for c in result.chain))


def _blocked_reason(sources: tuple[str, ...], findings: list[Finding]) -> str:
    bad = [f for f in findings if f.level is Level.ERROR and f.file in sources]
    return "; ".join(f"{f.file} {f.reason}" for f in bad[:3]) or "its sources are not usable"


def make_plan(
    desired: DesiredState,
    inputs: Inputs,
    hostname: str,
    now: dt.datetime,
    extra: list[Finding],
    cache: ReconcileCache | None = None,
) -> Plan:
    findings = list(extra)
    if cache is not None:
        cache.trim()
    trust = _load_trust(inputs, now, desired.expiry_warning_days, findings, cache)
    pairs = {p.name: _load_pair(p, desired, inputs, trust, hostname, now, findings, cache) for p in desired.pairs}
    private_mode = int(desired.permissions.private_mode, 8)
    artifacts: list[ArtifactPlan] = []
    for result in pairs.values():
        pair = result.pair
        note = f"from the {result.fallback_from} pair" if result.fallback_from else ""
        if result.trust == "unverified":
            note = "; ".join(filter(None, [note, "unverified (issuer not available)"]))
        for name, kind in ((pair.keystore, "jks"), (pair.pkcs12, "pkcs12")):
            if not name:
                continue
            plan = ArtifactPlan(name, kind, private_mode, result.sources, profile=desired.pkcs12_profile, note=note)  # type: ignore[arg-type]
            plan.password = inputs.passwords.get(name)  # also to describe a kept store
            password_problem = inputs.password_problems.get(name)
            if password_problem is not None:
                plan.blocked_by = password_problem.reason
            elif result.ok:
                plan.content = StoreContent.of([_key_entry(result)])
            else:
                plan.blocked_by = _blocked_reason(result.sources, findings)
            artifacts.append(plan)
    artifacts.append(_truststore_plan(desired, inputs, trust, pairs, hostname, findings))
    findings.extend(inputs.password_problems.values())
    findings.extend(_storeless_pairs(desired))
    links = trust.links if desired.truststore.hash_links else {}
    certificates = [(r.sources[1], c) for r in pairs.values() if r.fallback_from is None for c in r.chain[:1]]
    return Plan(artifacts, findings, pairs, links, hostname, certificates + trust.parsed)


def _storeless_pairs(desired: DesiredState) -> list[Finding]:
    """A pair that builds no store and feeds no other pair is almost always a desired state missing a key."""
    feeds = {p.fallback for p in desired.pairs if p.fallback}
    return [
        warning(
            p.cert,
            f'pair "{p.name}" builds no store: set "keystore" and/or "pkcs12" for it in the desired state',
            "no-store",
        )
        for p in desired.pairs
        if not p.keystore and not p.pkcs12 and p.name not in feeds
    ]


def _truststore_plan(
    desired: DesiredState,
    inputs: Inputs,
    trust: TrustResult,
    pairs: dict[str, PairResult],
    hostname: str,
    findings: list[Finding],
) -> ArtifactPlan:
    store = desired.truststore
    host = pairs.get(store.host_pair) if store.host_pair else None
    sources = trust.sources + (host.sources[1:] if host else ())
    plan = ArtifactPlan(store.file, "truststore", int(desired.permissions.public_mode, 8), sources)
    plan.password = inputs.passwords.get(store.file)
    if store.file in inputs.password_problems:
        plan.blocked_by = inputs.password_problems[store.file].reason
        return plan
    entries = dict(trust.entries)
    if host is not None:
        if not host.ok:
            plan.blocked_by = f"this host's certificate is not usable: {_blocked_reason(host.sources, findings)}"
            return plan
        alias = hostname.lower()
        leaf = cert_der(host.chain[0])
        if alias in entries and entries[alias] != leaf:
            findings.append(
                error(
                    sources[-1],
                    f"alias {alias!r} (this host) is taken by another trusted certificate",
                    "duplicate-alias",
                )
            )
        entries[alias] = leaf
    plan.content = StoreContent.of(trusted=entries)
    return plan
