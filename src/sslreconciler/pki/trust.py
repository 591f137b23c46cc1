"""The one trust decision: is a certificate verified along an RFC 5280 path to a trust source?

``validate_path`` builds every path from the leaf through the given intermediates to a trust anchor
and accepts the first one on which every rule holds (docs/trust.md lists them):

- each certificate is signed by the next one and is inside its validity period (the anchor too);
- every issuer below the anchor carries basicConstraints CA:TRUE; the anchor either does too, or is
  an old-style self-signed certificate with no basicConstraints at all (X.509 v1, or keyUsage with
  keyCertSign), which is what OpenSSL accepts as a root and nothing more;
- an issuer with keyUsage has keyCertSign; pathLenConstraint and nameConstraints hold;
- no certificate below the anchor has a critical extension this code does not understand;
- the anchor is one of ``anchors`` (the trust sources): never a certificate that came with the leaf.

It is written out here rather than delegated to ``cryptography.x509.verification`` because that
verifier cannot take a v1 root and refuses SHA-1 signatures and RSA issuer keys below 2048 bits
outright, which the policy rules (``policy_findings``) must report by name, and may lower to a warning.

The rules live beside it, one concern each: ``certfacts`` (what a certificate says: signer, extensions),
``name_constraints`` (rule 8's subtrees) and ``policy`` (``policy_findings``: what is weak or forbids the
store's use, each rule a stable code). Their names callers use are re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from cryptography import x509

from sslreconciler.pki.certfacts import (
    basic_constraints,
    der,
    describe,
    extension,
    is_self_signed,
    key_usage,
    self_issued,
    signed_by,
)
from sslreconciler.pki.name_constraints import names_problem
from sslreconciler.pki.policy import (
    CLIENT,
    KEY_USAGE,
    POLICY_RULES,
    SERVER,
    WEAK_DSA_KEY,
    WEAK_EC_CURVE,
    WEAK_RSA_KEY,
    WEAK_SIGNATURE,
    key_findings,
    policy_findings,
    signature_findings,
    usage_findings,
)

__all__ = [  # the path rules' own names, and the certificate facts and policy rules callers reach through here
    "CLIENT",
    "KEY_USAGE",
    "MAX_CHAIN_DEPTH",
    "MAX_PATHS",
    "MAX_STEPS",
    "POLICY_RULES",
    "SERVER",
    "WEAK_DSA_KEY",
    "WEAK_EC_CURVE",
    "WEAK_RSA_KEY",
    "WEAK_SIGNATURE",
    "Anchors",
    "ChainResult",
    "anchor_problem",
    "ca_problem",
    "der",
    "describe",
    "is_self_signed",
    "issuer_in_anchors",
    "key_findings",
    "policy_findings",
    "signature_findings",
    "signed_by",
    "usage_findings",
    "validate_path",
]

MAX_CHAIN_DEPTH = 8
MAX_PATHS = 32  # paths tried per leaf: cross-signed CAs give a few, a hostile pile must not give thousands
MAX_STEPS = 256  # partial paths expanded per leaf, however the pool is arranged


@dataclass(frozen=True, slots=True)
class ChainResult:
    ok: bool
    detail: str  # why it failed, or how it was verified
    chain: tuple[x509.Certificate, ...] = ()  # leaf first, the anchor last


def anchor_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` cannot be a trust anchor (issue certificates), or None when it can."""
    try:
        bc, ku = basic_constraints(cert), key_usage(cert)
    except ValueError:
        return "has unreadable extensions"
    if bc is not None and not bc.ca:
        return "is not a CA (basicConstraints CA:FALSE)"
    if ku is not None and not ku.key_cert_sign:
        return "has keyUsage without keyCertSign"
    if bc is None:
        if not is_self_signed(cert):
            return "has no basicConstraints and is not self-signed"
        if cert.version is not x509.Version.v1 and ku is None:
            return "is an X.509 v3 certificate without basicConstraints or keyUsage keyCertSign"
    return None


def ca_problem(cert: x509.Certificate, now: dt.datetime) -> str | None:
    """Why ``cert`` cannot serve as a cluster CA now (import it, issue under it): ``anchor_problem``, or
    outside its validity period, which the node's trust rules refuse too. None when it can."""
    if problem := anchor_problem(cert):
        return problem
    if cert.not_valid_after_utc <= now:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if cert.not_valid_before_utc > now:
        return f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    return None


@dataclass(slots=True)
class Anchors:
    """The trust anchors, indexed for the search; build once per reconcile, share across leaves.

    An anchor may be given as its DER and its subject's DER (``add_der``): it is parsed only when a
    search first asks for an issuer of that name, so a reconcile that verifies nothing parses none."""

    by_subject: dict[bytes, list[x509.Certificate]] = field(default_factory=dict)
    ders: set[bytes] = field(default_factory=set)
    der_list: list[bytes] = field(default_factory=list)  # every anchor's DER, in the order added
    _unparsed: dict[bytes, list[bytes]] = field(default_factory=dict)  # subject DER -> DERs not parsed yet

    @classmethod
    def of(cls, certs: Sequence[x509.Certificate]) -> Anchors:
        anchors = cls()
        for cert in certs:
            anchors.add(cert)
        return anchors

    def add(self, cert: x509.Certificate) -> None:
        self._parse(subject := cert.subject.public_bytes())  # keep the order within a name
        self.by_subject.setdefault(subject, []).append(cert)
        self.ders.add(encoded := der(cert))
        self.der_list.append(encoded)

    def add_der(self, subject: bytes, encoded: bytes) -> None:
        self._unparsed.setdefault(subject, []).append(encoded)
        self.ders.add(encoded)
        self.der_list.append(encoded)

    @property
    def certs(self) -> list[x509.Certificate]:
        """Every anchor, parsed (all of them: prefer ``issuers_of``)."""
        for subject in list(self._unparsed):
            self._parse(subject)
        return [c for group in self.by_subject.values() for c in group]

    def _parse(self, subject: bytes) -> None:
        pending = self._unparsed.pop(subject, None)
        if pending:
            self.by_subject.setdefault(subject, []).extend(x509.load_der_x509_certificate(d) for d in pending)

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return self.issuers_named(cert.issuer.public_bytes())

    def issuers_named(self, issuer: bytes) -> list[x509.Certificate]:
        """The anchors whose subject's DER is ``issuer``."""
        self._parse(issuer)
        return self.by_subject.get(issuer, [])

    def holds(self, cert: x509.Certificate) -> bool:
        return der(cert) in self.ders


def issuer_in_anchors(chain: Sequence[x509.Certificate], anchors: Anchors) -> bool:
    """Is any certificate of ``chain``, or the issuer of one, a trust anchor?"""
    return any(anchors.holds(c) or anchors.issuers_of(c) for c in chain)


def validate_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Anchors | Sequence[x509.Certificate],
    now: dt.datetime,
) -> ChainResult:
    """Is ``leaf`` verified at ``now`` along some path through ``intermediates`` to one of ``anchors``?"""
    store = anchors if isinstance(anchors, Anchors) else Anchors.of(anchors)
    if not store.ders:
        return ChainResult(False, "no CA certificate to verify against")
    dead_ends: list[tuple[int, str]] = []
    rule_failures: list[str] = []
    for path in _paths(leaf, list(intermediates), store, dead_ends):
        problem = _path_problem(path, now)
        if problem is None:
            how = "verified" if len(path) > 1 else "verified (the certificate is itself a trust anchor)"
            return ChainResult(True, how, tuple(path))
        rule_failures.append(problem)
    if rule_failures:
        return ChainResult(False, rule_failures[0])
    if dead_ends:
        return ChainResult(False, max(dead_ends, key=lambda d: d[0])[1])
    return ChainResult(False, f"issuer not found for {describe(leaf)}")


def _paths(
    leaf: x509.Certificate,
    pool: list[x509.Certificate],
    store: Anchors,
    dead_ends: list[tuple[int, str]],
) -> Iterator[list[x509.Certificate]]:
    """Every signature-linked path from ``leaf`` that ends in an anchor (depth-first, bounded)."""
    found = steps = 0
    stack: list[list[x509.Certificate]] = [[leaf]]
    while stack and found < MAX_PATHS:
        steps += 1
        if steps > MAX_STEPS:
            dead_ends.append((MAX_CHAIN_DEPTH + 2, f"gave up after {MAX_STEPS} candidate paths for {describe(leaf)}"))
            return
        path = stack.pop()
        current = path[-1]
        if store.holds(current):
            found += 1
            yield path
            continue
        if len(path) > MAX_CHAIN_DEPTH:
            dead_ends.append((len(path), f"chain deeper than {MAX_CHAIN_DEPTH} at {describe(current)}"))
            continue
        seen = {der(c) for c in path}
        anchors = [a for a in store.issuers_of(current) if der(a) not in seen]
        others = [c for c in pool if c.subject == current.issuer and der(c) not in seen and not store.holds(c)]
        candidates = anchors + others
        good = [c for c in candidates if signed_by(current, c)]
        if not candidates:
            issuer = current.issuer.rfc4514_string() or "(empty)"
            dead_ends.append((len(path), f"issuer not found for {describe(current)} (issuer {issuer})"))
        elif not good:
            dead_ends.append((len(path), f"bad signature for {describe(current)}"))
        for candidate in reversed(good):  # anchors first once popped
            stack.append([*path, candidate])


def _path_problem(path: Sequence[x509.Certificate], now: dt.datetime) -> str | None:
    """The first RFC 5280 rule the path breaks, or None."""
    for cert in path:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return (
                f"{describe(cert)} is outside its validity period "
                f"({cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
            )
    last = len(path) - 1
    try:
        for cert in path[:last]:  # the anchor's own extensions are the trust source's business
            for ext in cert.extensions:
                if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension):
                    oid = ext.oid.dotted_string
                    return f"{describe(cert)} has a critical extension this check does not know ({oid})"
        for j in range(1, len(path)):
            problem = _issuer_problem(path, j, is_anchor=j == last)
            if problem:
                return problem
    except ValueError as exc:  # duplicate or malformed extensions
        return f"a certificate on the path has unreadable extensions ({exc})"
    return None


def _issuer_problem(path: Sequence[x509.Certificate], j: int, is_anchor: bool) -> str | None:
    ca, child = path[j], path[j - 1]
    name = describe(ca)
    bc, ku = basic_constraints(ca), key_usage(ca)
    if bc is None:
        if not is_anchor:
            return f"{name} has no basicConstraints and is not a trust anchor: it cannot issue {describe(child)}"
        problem = anchor_problem(ca)
        if problem:
            return f"trust anchor {name} {problem}: it cannot issue {describe(child)}"
    elif not bc.ca:
        return f"{name} is not a CA (basicConstraints CA:FALSE): it cannot issue {describe(child)}"
    if ku is not None and not ku.key_cert_sign:
        return f"{name} has keyUsage without keyCertSign: it cannot issue {describe(child)}"
    if bc is not None and bc.path_length is not None:
        below = sum(1 for k in range(1, j) if not self_issued(path[k]))
        if below > bc.path_length:
            return f"{name} has pathLenConstraint {bc.path_length} but {below} CA certificate(s) below it"
    constraints = extension(ca, x509.NameConstraints)
    if isinstance(constraints, x509.NameConstraints):
        for k in range(j):
            if k > 0 and self_issued(path[k]):
                continue
            problem = names_problem(path[k], constraints, is_leaf=k == 0)
            if problem:
                return f"{describe(path[k])} {problem} (nameConstraints of {name})"
    return None
