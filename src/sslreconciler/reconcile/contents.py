"""Sources + desired state -> the entries each artifact must hold, and the findings. Pure: no I/O.

An artifact whose sources are bad gets no content (``blocked``): apply then keeps what is on disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509

from sslreconciler.config.desired import DesiredState, KeyPair
from sslreconciler.model.findings import Finding, FindingCode, Level, SourceError, error, warning
from sslreconciler.pki import trust as rules
from sslreconciler.pki import verify
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key
from sslreconciler.pki.subject_hash import subject_hash
from sslreconciler.pki.verdict import judge_chain
from sslreconciler.reconcile.memo import ReconcileCache, derived, memoised
from sslreconciler.reconcile.state import Inputs, SourceFile
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
    anchors: rules.Anchors = field(default_factory=rules.Anchors)
    # per trust directory: link name -> target file name
    links: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    parsed: list[tuple[str, x509.Certificate]] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)  # alias -> the trust file it came from


@dataclass(slots=True)
class Plan:
    artifacts: list[ArtifactPlan]
    findings: list[Finding]
    pairs: dict[str, PairResult]
    links: dict[str, dict[str, str]]
    hostname: str
    certificates: list[tuple[str, x509.Certificate]] = field(default_factory=list)  # (file, cert) parsed
    trusted: dict[str, bytes] = field(default_factory=dict)  # the authorities: alias -> DER (not this host)


def _alias_of(display: str) -> str:
    name = display.rpartition("/")[2]
    dot = name.rfind(".")
    return (name[:dot] if 0 < dot < len(name) - 1 else name).lower()  # PurePosixPath(display).stem, faster


def _alias_unfit(alias: str) -> str:
    """Why a JKS cannot carry this alias (Java reads aliases as modified UTF-8: one to three bytes a
    UTF-16 unit, 65,535 bytes at most), or empty. keytool cannot open a store with such an alias."""
    if any(ord(ch) > 0xFFFF for ch in alias):
        return f"its alias {alias!r} has a character outside the Basic Multilingual Plane, which a JKS cannot hold"
    if len(alias.encode("utf-8", "surrogatepass")) > 65_535:
        return "its alias is longer than a JKS can hold"
    return ""


def _usable(file: SourceFile | None, display: str, findings: list[Finding]) -> bytes | None:
    if file is None or not file.present:
        findings.append(error(display, "is missing", FindingCode.MISSING))
        return None
    if file.problem is not None:
        findings.append(file.problem)
        return None
    return file.data


@dataclass(slots=True)
class _TrustFile:
    link_dir: str  # the trust directory whose hash links it gets ("" for a single-file source)
    display: str
    certs: list[x509.Certificate]
    is_der: bool
    is_ca: bool = False  # every certificate shaped as a CA: trusted as it is


def _load_trust(
    inputs: Inputs, desired: DesiredState, now: dt.datetime, findings: list[Finding], cache: ReconcileCache | None
) -> TrustResult:
    """Parse every trust file: CAs become anchors; other certificates must be verified against them.

    Aliases are decided before anchors: a file whose alias clashes with another's is left out
    altogether (never trusted behind the report's back), the one that issued this host's
    certificate keeping its place.
    """
    warn_days, lowered = desired.expiry_warning_days, desired.policy.lowered
    result = TrustResult()
    files: list[_TrustFile] = []
    for trust_dir in inputs.trust_dirs:
        if trust_dir.is_dir:
            result.links.setdefault(trust_dir.display, {})
        for display in trust_dir.files:
            data = _usable(inputs.files.get(display), display, findings)
            if data is None:
                continue
            unfit = _alias_unfit(_alias_of(display))
            if unfit:
                findings.append(error(display, f"is left out: {unfit}; rename the file", FindingCode.BAD_NAME))
                continue
            try:
                certs = _parse_certs(data, display, cache)
            except SourceError as exc:
                findings.append(exc.finding)
                continue
            link_dir = trust_dir.display if trust_dir.is_dir else ""
            files.append(_TrustFile(link_dir, display, certs, b"-----BEGIN " not in data))
    result.parsed = [(f.display, cert) for f in files for cert in f.certs]
    parsed_files = {f.display for f in files}
    result.sources = tuple(f.display for f in files) + tuple(
        f for t in inputs.trust_dirs for f in t.files if f not in parsed_files
    )
    candidates = []
    for f in files:
        f.is_ca = all(_is_ca(c, cache) for c in f.certs)
        problems = _trust_file_findings(f, now, warn_days, lowered, cache)
        findings.extend(problems)
        if not any(p.level is Level.ERROR for p in problems):
            candidates.append(f)
    host = _HostCerts(_host_certs(inputs, desired, cache))
    kept = _resolve_aliases(candidates, host, findings)
    anchors = rules.Anchors.of([c for f in kept if f.is_ca for c in f.certs])
    result.anchors = anchors
    anchors_key = _anchors_key(anchors.certs, cache) if cache is not None else b""
    if desired.truststore.hash_links:
        findings.extend(_partial_chain_findings(kept, anchors, cache))
    accepted: list[_TrustFile] = []
    for f in kept:
        if f.is_ca:
            accepted.append(f)
            continue
        leaf = next(c for c in f.certs if not _is_ca(c, cache))
        others = [c for c in f.certs if c is not leaf]
        checked = _verified(leaf, others, anchors, now, cache, anchors_key)
        if not checked.ok:
            findings.append(
                error(f.display, f"is not signed by a CA in the trust sources: {checked.detail}", FindingCode.UNTRUSTED)
            )
            continue
        findings.extend(verify.validity_findings(leaf, f.display, now, warn_days))
        accepted.append(f)
    _entries_and_links(accepted, result, host, desired.truststore.hash_links, findings, cache)
    return result


def _partial_chain_findings(
    files: list[_TrustFile], anchors: rules.Anchors, cache: ReconcileCache | None
) -> list[Finding]:
    """A CA that is no root and whose issuer is not here: an anchor for Java and for this check, but
    ``openssl verify -CApath`` (without -partial_chain) wants the chain up to a self-signed root."""
    out = []
    for f in files:
        if not f.is_ca or not f.link_dir:
            continue
        for cert in f.certs:
            if _self_signed(cert, cache) or any(
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
    f: _TrustFile, now: dt.datetime, warn_days: int, lowered: frozenset[str], cache: ReconcileCache | None
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
        elif (weak := rules.signature_findings(cert, f.display, lowered)) and not _self_signed(cert, cache):
            out.extend(weak)  # a self-signature carries no trust, so its hash is no weakness
    return out


@dataclass(slots=True)
class _HostCerts:
    """This host's own certificate file: the CA that issued it is the cluster CA, which keeps its place."""

    certs: list[x509.Certificate]

    def issued_by(self, f: _TrustFile) -> bool:
        return any(
            cert_der(h) == cert_der(c) or (h.issuer == c.subject and rules.signed_by(h, c))
            for c in f.certs
            for h in self.certs
        )


def _host_certs(inputs: Inputs, desired: DesiredState, cache: ReconcileCache | None) -> list[x509.Certificate]:
    if desired.truststore.host_pair is None:
        return []
    pair = desired.pair(desired.truststore.host_pair)
    for name in (pair.cert, *((desired.pair(pair.fallback).cert,) if pair.fallback else ())):
        source = inputs.files.get(name)
        if source is not None and source.data is not None:
            try:
                return _parse_certs(source.data, name, cache)
            except SourceError:
                return []
    return []


def _resolve_aliases(files: list[_TrustFile], host: _HostCerts, findings: list[Finding]) -> list[_TrustFile]:
    """One file per alias (JKS lower-cases aliases); the rest left out with a finding naming both."""
    groups: dict[str, list[_TrustFile]] = {}
    for f in files:
        groups.setdefault(_alias_of(f.display), []).append(f)
    losers: set[str] = set()
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
    return [f for f in files if f.display not in losers]


def _entries_and_links(
    accepted: list[_TrustFile],
    result: TrustResult,
    host: _HostCerts,
    hash_links: bool,
    findings: list[Finding],
    cache: ReconcileCache | None,
) -> None:
    """Truststore entries and hash links; a certificate in two files goes in once, as ``openssl rehash`` does."""
    holders: dict[bytes, list[_TrustFile]] = {}
    for f in accepted:
        for cert in f.certs:
            holders.setdefault(_der(cert, cache), []).append(f)
    owner = {d: next((f for f in fs if len(fs) > 1 and host.issued_by(f)), fs[0]) for d, fs in holders.items()}
    owned = {_alias_of(f.display): f.display for f in accepted}
    used: set[str] = set()
    for f in accepted:
        alias = _alias_of(f.display)
        duplicates = []
        for i, cert in enumerate(f.certs):
            first = owner[_der(cert, cache)]
            if first is not f:
                duplicates.append(first.display)
                continue
            name = alias if i == 0 else _suffix_alias(alias, i + 1, owned, used)
            if i and f"{alias}-{i + 1}" in owned:
                text = (
                    f"certificate #{i + 1} goes in as alias {name!r}: {alias}-{i + 1} is "
                    f"{owned[f'{alias}-{i + 1}']}'s alias"
                )
                findings.append(warning(f.display, text, FindingCode.ALIAS_SUFFIX))
            used.add(name)
            result.entries[name] = _der(cert, cache)
            result.owners[name] = f.display
        if duplicates:
            text = (
                f"holds the same certificate as {duplicates[0]} (openssl rehash: duplicate certificate); "
                "it goes into the truststore and the hash links once, from that file"
            )
            findings.append(warning(f.display, text, FindingCode.DUPLICATE_CERTIFICATE))
        if not f.link_dir or not hash_links or duplicates:
            continue
        if f.is_der:
            text = (
                "is DER: OpenSSL -CApath reads only PEM, so it gets no hash link; "
                "replace it with its PEM form (openssl x509 -inform der -in FILE -out FILE.pem)"
            )
            findings.append(warning(f.display, text, FindingCode.NO_HASH_LINK))
        elif len(f.certs) != 1:
            text = (
                f"holds {len(f.certs)} certificates: like openssl rehash, no hash link is made for it, "
                "so OpenSSL -CApath does not see them; give each certificate its own file"
            )
            findings.append(warning(f.display, text, FindingCode.NO_HASH_LINK))
        else:
            _add_link(result.links[f.link_dir], _subject_hash(f.certs[0], cache), f.display.rpartition("/")[2])


def _suffix_alias(alias: str, n: int, owned: Container[str], used: set[str]) -> str:
    """``<alias>-<n>`` for the n-th certificate of a file, never an alias another file owns."""
    candidate, k = f"{alias}-{n}", 2
    while candidate in owned or candidate in used:
        candidate, k = f"{alias}-{n}-{k}", k + 1
    return candidate


def _parse_certs(data: bytes, display: str, cache: ReconcileCache | None) -> list[x509.Certificate]:
    """parse_certificates, once per distinct content (a failure is never remembered)."""
    table = cache.certs if cache is not None else None
    return memoised(table, hashlib.sha256(data).digest(), lambda: parse_certificates(data, display))


def _subject_hash(cert: x509.Certificate, cache: ReconcileCache | None) -> str:
    """By identity in this process; by the DER's digest across runs (the state-dir record keeps them)."""

    def by_content() -> str:
        table = cache.subject_hashes if cache is not None else None
        key = hashlib.sha256(_der(cert, cache)).digest()
        if cache is not None:
            cache.used_subject_hashes.add(key)
        return memoised(table, key, lambda: subject_hash(cert))

    return derived(cache, cert, "subject_hash", by_content)


def _is_ca(cert: x509.Certificate, cache: ReconcileCache | None) -> bool:
    return derived(cache, cert, "is_ca", lambda: verify.is_ca(cert))


def _self_signed(cert: x509.Certificate, cache: ReconcileCache | None) -> bool:
    """A signature check: once per certificate, however many rules ask."""
    return derived(cache, cert, "self_signed", lambda: verify.is_self_signed(cert))


def _der(cert: x509.Certificate, cache: ReconcileCache | None) -> bytes:
    return derived(cache, cert, "der", lambda: cert_der(cert))


def _verified(
    leaf: x509.Certificate,
    others: list[x509.Certificate],
    anchors: rules.Anchors,
    now: dt.datetime,
    cache: ReconcileCache | None,
    anchors_key: bytes = b"",
) -> verify.ChainResult:
    """verify_chain, remembering successes until a certificate in the chain crosses a validity bound."""
    if cache is None:
        return verify.verify_chain(leaf, others, anchors, now)
    chain_key = hashlib.sha256(b"".join(_der(c, cache) for c in (leaf, *others))).digest()
    anchors_key = anchors_key or _anchors_key(anchors.certs, cache)
    known = cache.verdicts.get((chain_key, anchors_key))
    cache.used_verdicts.add((chain_key, anchors_key))
    stamp = now.timestamp()
    if known is not None and known[1] <= stamp <= known[2]:
        return verify.ChainResult(True, known[0])
    checked = verify.verify_chain(leaf, others, anchors, now)
    if checked.ok and checked.chain:
        start = max(c.not_valid_before_utc for c in checked.chain).timestamp()
        end = min(c.not_valid_after_utc for c in checked.chain).timestamp()
        cache.verdicts[(chain_key, anchors_key)] = (checked.detail, start, end)
    return checked


def _anchors_key(anchors: list[x509.Certificate], cache: ReconcileCache | None) -> bytes:
    return hashlib.sha256(b"".join(sorted(_der(a, cache) for a in anchors))).digest()


def _add_link(links: dict[str, str], digest: str, target: str) -> None:
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
        return pair, None, [error(missing, f"is missing ({there} is present): a pair needs both", FindingCode.MISSING)]
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
        own.append(
            error(source_pair.key, text, FindingCode.KEY_MODE)
            if refuse
            else warning(source_pair.key, text, FindingCode.KEY_MODE)
        )
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
            own.extend(_trust_findings(pair, result, trust, now, desired.policy.lowered))
    if fallback_from is None or pair.name == fallback_from:
        findings.extend(own)
    else:  # the fallback pair reports its own findings; repeat only what this pair's policy adds
        findings.extend(f for f in own if f.code in {FindingCode.UNTRUSTED, FindingCode.UNVERIFIED})
    result.ok = result.key is not None and bool(result.chain) and not any(f.level is Level.ERROR for f in own)
    return result


def _trust_findings(
    pair: KeyPair, result: PairResult, trusted: TrustResult, now: dt.datetime, lowered: frozenset[str]
) -> list[Finding]:
    """The pair's chain judged by the one rule (pki/verdict.py), against the trust sources only."""
    display = result.sources[1]  # the certificate file actually used (the fallback's, if any)
    verdict = judge_chain(
        result.chain, trusted.anchors, now, display, pair.tls_purposes, lowered, require=pair.verify == "require"
    )
    if verdict.trust:
        result.trust = verdict.trust
    return list(verdict.findings)


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
    trust = _load_trust(inputs, desired, now, findings, cache)
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
    return Plan(artifacts, findings, pairs, links, hostname, certificates + trust.parsed, dict(trust.entries))


def _storeless_pairs(desired: DesiredState) -> list[Finding]:
    """A pair that builds no store and feeds no other pair is almost always a desired state missing a key."""
    feeds = {p.fallback for p in desired.pairs if p.fallback}
    return [
        warning(
            p.cert,
            f'pair "{p.name}" builds no store: set "keystore" and/or "pkcs12" for it in the desired state',
            FindingCode.NO_STORE,
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
                    f"alias {alias!r} (this host) is taken by another trusted certificate, "
                    f"from {trust.owners.get(alias, 'the trust sources')}; this host's goes in under it",
                    FindingCode.DUPLICATE_ALIAS,
                )
            )
        entries[alias] = leaf
    plan.content = StoreContent.of(trusted=entries)
    return plan
