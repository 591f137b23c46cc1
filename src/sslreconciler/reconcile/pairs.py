"""Each key pair: its files loaded (its own, or its fallback's), its chain ordered and judged. Pure: no I/O.

The chain verdict is the one rule every command uses (``pki/verdict.judge_chain``), against what the
pair's ``verify_with`` names: the trust sources' anchors and/or the system trust store's
(``system_anchors``), the latter for this pair's chain only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509

from sslreconciler.config.desired import DesiredState, KeyPair
from sslreconciler.model.findings import Finding, FindingCode, Level, SourceError, error, warning
from sslreconciler.pki import trust as rules
from sslreconciler.pki import verify
from sslreconciler.pki.sources import PrivateKey
from sslreconciler.pki.verdict import judge_chain
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.state import Inputs, source_bytes
from sslreconciler.reconcile.system_anchors import SYSTEM_TRUST, system_anchors
from sslreconciler.stores.entries import KeyEntry, cert_der, key_pkcs8

# What a pair built from its fallback's files repeats of their findings: only what its own policy adds
# (the fallback pair reports the rest itself).
OWN_POLICY_CODES = frozenset({FindingCode.UNTRUSTED, FindingCode.UNVERIFIED})


@dataclass(slots=True)
class PairResult:
    pair: KeyPair
    sources: tuple[str, ...]  # (key file, certificate file) actually used: the fallback's, if any
    key: PrivateKey | None = field(default=None, repr=False)
    chain: list[x509.Certificate] = field(default_factory=list)
    ok: bool = False
    trust: str = ""  # verified / unverified / ...
    fallback_from: str | None = None
    findings: list[Finding] = field(default_factory=list)  # what this pair reports

    @property
    def trust_note(self) -> str:
        """What the report says of the chain's trust beside its stores ("" when verified by the trust sources)."""
        if self.trust == "unverified":
            return "unverified (issuer not available)"
        return self.trust if self.trust.startswith(f"verified via {SYSTEM_TRUST}") else ""

    def key_entry(self) -> KeyEntry:
        """The store entry this pair makes (only for a pair that is ``ok``)."""
        assert self.key is not None
        return KeyEntry(self.pair.entry_alias, key_pkcs8(self.key), tuple(cert_der(c) for c in self.chain))


def load_pair(
    pair: KeyPair,
    desired: DesiredState,
    inputs: Inputs,
    anchors: rules.Anchors,
    hostname: str,
    now: dt.datetime,
    facts: CertFacts,
) -> PairResult:
    """The pair's key and ordered chain, whether it is usable (``ok``), and its findings."""
    source_pair, fallback_from, problems = _pair_sources(pair, desired, inputs)
    result = PairResult(pair, (source_pair.key, source_pair.cert), fallback_from=fallback_from)
    if problems:
        result.findings = problems
        return result
    own: list[Finding] = []
    key_data = source_bytes(inputs.files.get(source_pair.key), source_pair.key)
    cert_data = source_bytes(inputs.files.get(source_pair.cert), source_pair.cert)
    own.extend(d for d in (key_data, cert_data) if isinstance(d, Finding))
    own.extend(_key_mode_findings(source_pair, desired, inputs))
    try:
        key = facts.private_key(key_data, source_pair.key) if isinstance(key_data, bytes) else None
        certs = facts.certificates(cert_data, source_pair.cert) if isinstance(cert_data, bytes) else None
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
            # the one chain rule (pki/verdict.py), against what this pair verifies with, on the file actually used;
            # the system's roots are asked for (parsed, once per process) only for a chain the trust sources do
            # not anchor: judge_chain looks at them only then
            own_anchors = anchors if "trust-sources" in pair.verifies_with else rules.Anchors()
            use_system = "system" in pair.verifies_with and not rules.issuer_in_anchors(result.chain, own_anchors)
            verdict = judge_chain(
                result.chain,
                own_anchors,
                now,
                source_pair.cert,
                pair.tls_purposes,
                desired.policy.lowered,
                require=pair.verify == "require",
                extra=system_anchors(inputs, facts) if use_system else None,
                extra_name=SYSTEM_TRUST,
            )
            result.trust = verdict.trust
            own.extend(verdict.findings)
    if fallback_from is None or pair.name == fallback_from:
        result.findings = own
    else:
        result.findings = [f for f in own if f.code in OWN_POLICY_CODES]
    result.ok = result.key is not None and bool(result.chain) and not any(f.level is Level.ERROR for f in own)
    return result


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


def _key_mode_findings(source_pair: KeyPair, desired: DesiredState, inputs: Inputs) -> list[Finding]:
    """A key file others may read: refused or warned about, as the desired state says."""
    key_file = inputs.files.get(source_pair.key)
    if key_file is None or key_file.data is None or not key_file.mode & 0o077:
        return []
    text = f"is readable by group or others (mode {key_file.mode:04o}); make it 0600"
    if desired.permissions.key_source_readable_by_others == "refuse":
        return [error(source_pair.key, text, FindingCode.KEY_MODE)]
    return [warning(source_pair.key, text, FindingCode.KEY_MODE)]
