"""Which command renews a pair's certificate, and the expiry findings that say so. Pure: no I/O.

The one home of this rule (docs/design.md's table). From what the desired state and the certificates say:

- ``acme``: the desired state has an ``acme`` block and this is the web pair it renews (``ssl-web``);
- ``cluster``: the pair's certificate was issued directly by a self-signed CA from the trust sources that
  also issued this host's own certificate (``truststore.host_pair``): the cluster CA, which ``pki init-ca``
  makes and ``pki issue`` signs host pairs with directly (an outside CA issues from an intermediate);
- ``outside``: anything else, renewed by the CA that issued it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import replace

from cryptography import x509

from sslreconciler.config.desired import DesiredState
from sslreconciler.config.pair_model import WEB_PAIR
from sslreconciler.model.findings import Finding, FindingCode
from sslreconciler.pki import trust as rules

# what the advice is appended to: a certificate running out, or run out
EXPIRY_CODES = frozenset({FindingCode.EXPIRING, FindingCode.EXPIRED})


class Route(enum.StrEnum):
    ACME = "acme"
    CLUSTER = "cluster"
    OUTSIDE = "outside"


def renewal_route(
    pair_name: str,
    chain: Sequence[x509.Certificate],
    desired: DesiredState,
    host_chain: Sequence[x509.Certificate],
    anchors: rules.Anchors,
) -> Route:
    """How the pair's certificate (``chain[0]``) is renewed; ``host_chain``: the host pair's chain."""
    if desired.acme is not None and pair_name == WEB_PAIR:
        return Route.ACME
    if chain and host_chain and chain[0].issuer == host_chain[0].issuer:
        leaf = chain[0]
        for ca in anchors.issuers_of(leaf):
            if rules.is_self_signed(ca) and rules.signed_by(leaf, ca) and rules.signed_by(host_chain[0], ca):
                return Route.CLUSTER
    return Route.OUTSIDE


def renewal_advice(route: Route, pair_name: str, cert_file: str, issuer: str) -> str:
    """What to do, in words, for a pair whose certificate runs out."""
    if route is Route.ACME:
        return "renew it with `sslreconciler acme renew` (the desired state's acme block manages this pair)"
    if route is Route.CLUSTER:
        web = " --web-too" if pair_name == WEB_PAIR else ""
        return (
            f"the cluster CA issued it: on the master run `sslreconciler pki renew --staging DIR --within DAYS{web}`, "
            "then `pki bundle` for this host and `pki install-bundle` here"
        )
    return f"get a renewed certificate from the outside CA that issued it ({issuer}) and put it in {cert_file}"


def with_renewal_advice(
    findings: list[Finding],
    pair_name: str,
    chain: Sequence[x509.Certificate],
    desired: DesiredState,
    host_chain: Sequence[x509.Certificate],
    anchors: rules.Anchors,
) -> list[Finding]:
    """``findings`` with each expiry finding's reason ending in the command that renews the pair."""
    if not chain or not any(f.code in EXPIRY_CODES for f in findings):
        return findings
    route = renewal_route(pair_name, chain, desired, host_chain, anchors)
    out = []
    for f in findings:
        if f.code in EXPIRY_CODES:
            advice = renewal_advice(route, pair_name, f.file, chain[0].issuer.rfc4514_string())
            f = replace(f, reason=f"{f.reason}; {advice}")
        out.append(f)
    return out
