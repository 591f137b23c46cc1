"""Sources + desired state -> the plan: what each artifact must hold, and the findings. Pure: no I/O.

An artifact whose sources are bad gets no content (``blocked_by`` says why): decide then keeps what
is on disk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sslreconciler.config.desired import DesiredState
from sslreconciler.model.findings import Finding, FindingCode, Level, error, warning
from sslreconciler.model.jks_alias import java_lower
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.pairs import PairResult, load_pair
from sslreconciler.reconcile.renewal import with_renewal_advice
from sslreconciler.reconcile.report import CertInfo
from sslreconciler.reconcile.state import Inputs
from sslreconciler.reconcile.trust_files import TrustResult, load_trust
from sslreconciler.stores.entries import StoreContent, cert_der
from sslreconciler.stores.pkcs12 import Profile

ArtifactKind = Literal["jks", "pkcs12", "truststore"]  # the PEM outputs' are reconcile/pem.py's


@dataclass(slots=True)
class ArtifactPlan:
    name: str
    kind: ArtifactKind
    mode: int
    sources: tuple[str, ...]  # displays of the files it derives from
    content: StoreContent | None = None  # None: blocked by bad sources
    password: str | None = field(default=None, repr=False)
    profile: Profile = "modern"
    blocked_by: str = ""
    note: str = ""  # e.g. "from the ssl pair", "unverified"


@dataclass(slots=True)
class Plan:
    artifacts: list[ArtifactPlan]
    findings: list[Finding]
    pairs: dict[str, PairResult]
    links: dict[str, dict[str, str]]
    hostname: str
    certificates: list[tuple[str, CertInfo]] = field(default_factory=list)  # (file, report entry) parsed
    trusted: dict[str, bytes] = field(default_factory=dict)  # the authorities: alias -> DER (not this host)
    subjects: dict[bytes, str] = field(default_factory=dict)  # a trusted DER -> its subject, for the trust set
    trust_sources: tuple[str, ...] = ()  # the trust files read: what the PEM CA bundle derives from


def make_plan(
    desired: DesiredState, inputs: Inputs, hostname: str, now: dt.datetime, extra: Sequence[Finding], facts: CertFacts
) -> Plan:
    """``extra``: findings already known (observe's, the caller's); they come first and may block."""
    trust = load_trust(inputs, desired, now, facts)
    pairs = {p.name: load_pair(p, desired, inputs, trust.anchors, hostname, now, facts) for p in desired.pairs}
    host = pairs.get(desired.truststore.host_pair or "")
    for r in pairs.values():  # an expiry finding names the command that renews the pair (renewal.py)
        r.findings = with_renewal_advice(
            r.findings, r.pair.name, r.chain, desired, host.chain if host else [], trust.anchors
        )
    findings = [*extra, *trust.findings, *(f for r in pairs.values() for f in r.findings)]
    artifacts = [plan for r in pairs.values() for plan in _pair_artifacts(r, desired, inputs, findings)]
    truststore, clash = _truststore_plan(desired, inputs, trust, pairs, hostname, findings)
    artifacts.append(truststore)
    findings.extend(clash)
    findings.extend(inputs.password_problems.values())
    findings.extend(_storeless_pairs(desired))
    links = trust.links if desired.truststore.hash_links else {}
    certificates = [
        (r.sources[1], facts.cert_info(c)) for r in pairs.values() if r.fallback_from is None for c in r.chain[:1]
    ]
    parsed = certificates + trust.parsed
    trusted = dict(trust.entries)
    return Plan(artifacts, findings, pairs, links, hostname, parsed, trusted, trust.subjects, trust.sources)


def _pair_artifacts(
    result: PairResult, desired: DesiredState, inputs: Inputs, findings: Sequence[Finding]
) -> list[ArtifactPlan]:
    """The pair's keystore and/or PKCS#12 file; ``findings``: all so far, to say what blocks them."""
    pair = result.pair
    note = f"from the {result.fallback_from} pair" if result.fallback_from else ""
    note = "; ".join(filter(None, [note, result.trust_note]))
    private_mode = int(desired.permissions.private_mode, 8)
    kinds: tuple[tuple[str | None, ArtifactKind], ...] = ((pair.keystore, "jks"), (pair.pkcs12, "pkcs12"))
    plans = []
    for name, kind in kinds:
        if not name:
            continue
        plan = ArtifactPlan(name, kind, private_mode, result.sources, profile=desired.pkcs12_profile, note=note)
        plan.password = inputs.passwords.get(name)  # also to describe a kept store
        password_problem = inputs.password_problems.get(name)
        if password_problem is not None:
            plan.blocked_by = password_problem.reason
        elif result.ok:
            plan.content = StoreContent.of([result.key_entry()])
        else:
            plan.blocked_by = blocked_reason(result.sources, findings)
        plans.append(plan)
    return plans


def _truststore_plan(
    desired: DesiredState,
    inputs: Inputs,
    trust: TrustResult,
    pairs: dict[str, PairResult],
    hostname: str,
    findings: Sequence[Finding],
) -> tuple[ArtifactPlan, list[Finding]]:
    """The truststore: the trusted entries and this host's certificate; and a clash of its alias, if any."""
    store = desired.truststore
    host = pairs.get(store.host_pair) if store.host_pair else None
    sources = trust.sources + (host.sources[1:] if host else ())
    plan = ArtifactPlan(store.file, "truststore", int(desired.permissions.public_mode, 8), sources)
    plan.password = inputs.passwords.get(store.file)
    if store.file in inputs.password_problems:
        plan.blocked_by = inputs.password_problems[store.file].reason
        return plan, []
    entries = dict(trust.entries)
    clash: list[Finding] = []
    if host is not None:
        if not host.ok:
            plan.blocked_by = f"this host's certificate is not usable: {blocked_reason(host.sources, findings)}"
            return plan, []
        alias = java_lower(hostname)  # as the JKS writer lower-cases it: else rewritten every run
        leaf = cert_der(host.chain[0])
        if alias in entries and entries[alias] != leaf:
            text = (
                f"alias {alias!r} (this host) is taken by another trusted certificate, "
                f"from {trust.owners.get(alias, 'the trust sources')}; this host's goes in under it"
            )
            clash.append(error(sources[-1], text, FindingCode.DUPLICATE_ALIAS))
        entries[alias] = leaf
    plan.content = StoreContent.of(trusted=entries)
    return plan, clash


def blocked_reason(sources: tuple[str, ...], findings: Sequence[Finding]) -> str:
    bad = [f for f in findings if f.level is Level.ERROR and f.file in sources]
    return "; ".join(f"{f.file} {f.reason}" for f in bad[:3]) or "its sources are not usable"


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
