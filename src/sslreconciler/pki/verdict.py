"""The chain verdict, in one place: is a certificate chain verified, unverified or refused, and what
does the key and usage policy say about it?

Every caller asks here: the reconcile (each pair's certificate), ``web install`` and ``acme renew``
(before a pair is put in place) and ``pki install-bundle``. The rule: a chain is verified against the
trust sources only, never against a root that came inside the file. When its issuer is among the
anchors (or the pair says ``verify: require``) it must verify; otherwise it is *unverified* (a warning,
as sipXecs installs an outside CA's certificate) once each certificate is signed by the next.

``extra``: more anchors for this chain only (the system's trust store, for a pair whose ``verify_with``
names ``system``). A chain that does not verify against the trust sources may verify against them; its
``trust`` then says so and names the root used ("verified via system trust: CN=..."). When its issuer is
among them it must verify there, as with the trust sources; the policy rules apply either way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from cryptography import x509

from sslreconciler.model.findings import Finding, FindingCode, Level, error, warning
from sslreconciler.pki import trust, verify

UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """``trust``: the verified path's description, or ``"unverified"``; ``""`` when refused."""

    trust: str
    chain: tuple[x509.Certificate, ...]  # the verified path (anchor last), or the chain as given
    findings: tuple[Finding, ...]  # untrusted or bad-chain (refused), unverified (warning), then policy
    detail: str = ""  # the path verifier's words: the path it found, or why none verifies

    @property
    def verified(self) -> bool:
        return bool(self.trust) and self.trust != UNVERIFIED

    @property
    def refusal(self) -> Finding | None:
        """The first finding at error level: why this chain must not be used."""
        return next((f for f in self.findings if f.level is Level.ERROR), None)


def judge_chain(
    chain: Sequence[x509.Certificate],
    anchors: trust.Anchors,
    now: dt.datetime,
    display: str,
    purposes: Collection[str] = (),
    lowered: Collection[str] = (),
    require: bool = False,
    extra: trust.Anchors | None = None,
    extra_name: str = "system trust",
) -> ChainVerdict:
    """``chain``: leaf first, ordered (verify.order_chain). ``display``: the file the findings name.
    ``require``: the pair must verify (``verify: require``), whether or not its issuer is an anchor.
    ``extra``, ``extra_name``: anchors for this chain only, and what to call them (see above)."""
    leaf, intermediates = chain[0], list(chain[1:])
    in_extra = extra is not None and bool(extra.ders) and trust.issuer_in_anchors(chain, extra)
    in_anchors = trust.issuer_in_anchors(chain, anchors)
    if in_extra and extra is not None and not in_anchors:
        checked = verify.verify_chain(leaf, intermediates, extra, now)
        if checked.ok:
            path = tuple(checked.chain)
            how = f"verified via {extra_name}: {path[-1].subject.rfc4514_string()}"
            policy = tuple(trust.policy_findings(path, display, True, purposes, lowered))
            return ChainVerdict(how, path, policy, checked.detail)
        refused = error(
            display, f"does not chain to a trusted CA ({extra_name}): {checked.detail}", FindingCode.UNTRUSTED
        )
        return ChainVerdict("", tuple(chain), (refused,), checked.detail)
    if require or in_anchors:
        checked = verify.verify_chain(leaf, intermediates, anchors, now)
        if not checked.ok:
            refused = error(display, f"does not chain to a trusted CA: {checked.detail}", FindingCode.UNTRUSTED)
            return ChainVerdict("", tuple(chain), (refused,), checked.detail)
        path = tuple(checked.chain)
        policy = tuple(trust.policy_findings(path, display, True, purposes, lowered))
        return ChainVerdict(checked.detail, path, policy, checked.detail)
    link_problems = verify.links_findings(chain, display)
    if link_problems:
        return ChainVerdict("", tuple(chain), tuple(link_problems))
    top = chain[-1]
    if verify.is_self_signed(top):
        why = f"its root ({verify.describe(top)}) is self-signed and not in the trust sources"
    else:
        why = f"its issuer ({top.issuer.rfc4514_string()}) is not in the trust sources"
    if extra is not None:
        why += f" nor in the {extra_name}"
    unverified = warning(display, f"unverified: {why}", FindingCode.UNVERIFIED)
    unanchored = trust.policy_findings(chain, display, False, purposes, lowered)
    return ChainVerdict(UNVERIFIED, tuple(chain), (unverified, *unanchored))
