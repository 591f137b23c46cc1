"""Table tests of the one trust function (pki/trust.py), in-process: each rule, its finding text, and the
mirror case that must still pass."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from sslreconciler.model.findings import Level
from sslreconciler.pki import trust, verify
from sslreconciler.pki.trust import validate_path

from pkitools import NOW, Issued
from trustkit import NO_CERTSIGN_KU, V1, cert, dns, ipnet, openssl_signed, openssl_v1

# (leaf, intermediates, anchors)
Case = tuple[Issued, list[Issued], list[Issued]]

ROOT = cert("Cluster Root")
EC_ROOT = cert("EC Root", kind="ec384")
OTHER_ROOT = cert("Other Root")


def _direct() -> Case:
    return cert("host.example.com", ROOT, ca=False), [], [ROOT]


def _ec() -> Case:
    inter = cert("EC Issuing", EC_ROOT, kind="ec", path_length=0)
    return cert("ec.example.com", inter, kind="ec", ca=False), [inter], [EC_ROOT]


def _rsa_leaf_under_ec() -> Case:
    return cert("mixed.example.com", EC_ROOT, ca=False), [], [EC_ROOT]


def _pathlen_1() -> Case:
    inter1 = cert("Inter pathLen 1", ROOT, path_length=1)
    inter2 = cert("Inter 2", inter1, path_length=0)
    return cert("deep.example.com", inter2, ca=False), [inter2, inter1], [ROOT]


def _pathlen_0_broken() -> Case:
    inter1 = cert("Inter pathLen 0", ROOT, path_length=0)
    inter2 = cert("Inter below 0", inter1)
    return cert("deep.example.com", inter2, ca=False), [inter2, inter1], [ROOT]


def _ca_false_issues() -> Case:
    host = cert("peer.example.com", ROOT, ca=False)
    return cert("victim.example.com", host, ca=False), [host], [ROOT]


def _ca_false_anchor() -> Case:
    host = cert("peer.example.com", ROOT, ca=False)
    return cert("victim.example.com", host, ca=False), [], [host]


def _no_certsign() -> Case:
    inter = cert("Inter without keyCertSign", ROOT, ku=NO_CERTSIGN_KU)
    return cert("host.example.com", inter, ca=False), [inter], [ROOT]


def _v3_inter_without_bc() -> Case:
    inter = cert("Inter without BC", ROOT, ca=None)
    return cert("host.example.com", inter, ca=False), [inter], [ROOT]


def _nc_root(**kw: list[x509.GeneralName]) -> Issued:
    return cert("Constrained Root", **kw)


NC_ROOT = _nc_root(permitted=[*dns("example.com"), ipnet("10.0.0.0/8")], excluded=dns("bad.example.com"))


def _nc_ok() -> Case:
    inter = cert("Constrained Issuing", NC_ROOT)
    return cert("pbx.example.com", inter, ca=False), [inter], [NC_ROOT]


def _nc_outside() -> Case:
    inter = cert("Constrained Issuing", NC_ROOT)
    return cert("pbx.evil.org", inter, ca=False), [inter], [NC_ROOT]


def _nc_excluded() -> Case:
    return cert("x.bad.example.com", NC_ROOT, ca=False), [], [NC_ROOT]


def _nc_inter_constrains() -> Case:
    inter = cert("Issuing for voice", ROOT, permitted=dns(".voice.example.com"))
    return cert("pbx.example.com", inter, ca=False), [inter], [ROOT]


def _nc_inter_ok() -> Case:
    inter = cert("Issuing for voice", ROOT, permitted=dns(".voice.example.com"))
    return cert("pbx.voice.example.com", inter, ca=False), [inter], [ROOT]


def _own_root_inside() -> Case:
    outside = cert("Outside Root")
    inter = cert("Outside Issuing", outside)
    return cert("web.example.com", inter, ca=False), [inter, outside], [ROOT]


def _self_signed_leaf() -> Case:
    return cert("web.example.com", ca=False), [], [ROOT]


def _self_signed_leaf_trusted() -> Case:
    web = cert("web.example.com", ku=None)  # what `openssl req -x509` makes: CA:TRUE, self-signed
    return web, [], [ROOT, web]


def _cross_signed(anchor: str) -> Callable[[], Case]:
    def build() -> Case:
        new_root = cert("New Root")
        inter_key = cert("Issuing CA", new_root)
        cross = cert("Issuing CA", ROOT, the_key=inter_key.key)  # same name and key, signed by the old root
        leaf = cert("crossed.example.com", inter_key, ca=False)
        return leaf, [inter_key, cross, new_root], [ROOT if anchor == "old" else new_root]
    return build


def _expired_inter() -> Case:
    inter = cert("Old Issuing", ROOT, not_before=NOW - dt.timedelta(days=400), days=30)
    return cert("host.example.com", inter, ca=False), [inter], [ROOT]


def _unknown_critical() -> Case:
    return cert("host.example.com", ROOT, ca=False, unknown_critical=True), [], [ROOT]


def _bad_signature() -> Case:
    impostor = cert("Cluster Root")  # same name, other key
    return cert("host.example.com", impostor, ca=False), [], [ROOT]


def _v3_anchor_without_bc_or_ku() -> Case:
    root = cert("Bare v3 Root", ca=None, ku=None)
    return cert("host.example.com", root, ca=False), [], [root]


CASES: dict[str, tuple[Callable[[], Case], bool, str]] = {
    "rsa direct": (_direct, True, "verified"),
    "ec intermediate pathLen 0": (_ec, True, "verified"),
    "rsa leaf under an ec root": (_rsa_leaf_under_ec, True, "verified"),
    "intermediate pathLen 1": (_pathlen_1, True, "verified"),
    "pathLen 0 exceeded": (_pathlen_0_broken, False, "CN=Inter pathLen 0 has pathLenConstraint 0 but 1 CA certificate(s) below it"),
    "CA:FALSE issues": (_ca_false_issues, False, "CN=peer.example.com is not a CA (basicConstraints CA:FALSE): it cannot issue CN=victim.example.com"),
    "CA:FALSE as anchor": (_ca_false_anchor, False, "CN=peer.example.com is not a CA (basicConstraints CA:FALSE)"),
    "no keyCertSign": (_no_certsign, False, "CN=Inter without keyCertSign has keyUsage without keyCertSign: it cannot issue"),
    "v3 intermediate without basicConstraints": (_v3_inter_without_bc, False, "CN=Inter without BC has no basicConstraints and is not a trust anchor"),
    "name constraints hold": (_nc_ok, True, "verified"),
    "name outside permitted": (_nc_outside, False, "name pbx.evil.org is outside the permitted names (nameConstraints of CN=Constrained Root)"),
    "name excluded": (_nc_excluded, False, "name x.bad.example.com is excluded"),
    "intermediate constrains": (_nc_inter_constrains, False, "name pbx.example.com is outside the permitted names (nameConstraints of CN=Issuing for voice)"),
    "intermediate constraint held": (_nc_inter_ok, True, "verified"),
    "own root inside the file": (_own_root_inside, False, "issuer not found for CN=Outside Root"),
    "self-signed leaf": (_self_signed_leaf, False, "issuer not found for CN=web.example.com"),
    "self-signed leaf in the trust sources": (_self_signed_leaf_trusted, True, "itself a trust anchor"),
    "cross-signed via the old root": (_cross_signed("old"), True, "verified"),
    "cross-signed via the new root": (_cross_signed("new"), True, "verified"),
    "expired intermediate": (_expired_inter, False, "CN=Old Issuing is outside its validity period"),
    "unknown critical extension": (_unknown_critical, False, "has a critical extension this check does not know (1.3.6.1.4.1.99999.1)"),
    "bad signature": (_bad_signature, False, "bad signature for CN=host.example.com"),
    "v3 anchor without basicConstraints or keyUsage": (_v3_anchor_without_bc_or_ku, False, "is an X.509 v3 certificate without basicConstraints"),
}


@pytest.mark.parametrize("label", list(CASES))
def test_path_rules(label: str) -> None:
    build, ok, text = CASES[label]
    leaf, inters, anchors = build()
    result = validate_path(leaf.cert, [i.cert for i in inters], [a.cert for a in anchors], dt.datetime.now(dt.UTC))
    assert result.ok is ok, result.detail
    assert text in result.detail, result.detail
    if ok:  # the path found ends in one of the anchors, never in a certificate that came with the leaf
        assert result.chain[-1] in [a.cert for a in anchors]
    # verify.verify_chain is the same function, under the name every caller uses
    again = verify.verify_chain(leaf.cert, [i.cert for i in inters], trust.Anchors.of([a.cert for a in anchors]),
                                dt.datetime.now(dt.UTC))
    assert (again.ok, again.detail) == (result.ok, result.detail)


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> V1:
    return openssl_v1(tmp_path_factory.mktemp("v1"))


def test_v1_root_and_v1_leaf_still_verify(v1: V1) -> None:
    result = validate_path(v1.leaf.cert, [], [v1.root.cert], dt.datetime.now(dt.UTC))
    assert result.ok, result.detail
    assert trust.anchor_problem(v1.root.cert) is None


def test_v1_intermediate_cannot_issue(v1: V1) -> None:
    """The fallback is for roots only: a v1 certificate below the anchor is not a CA (OpenSSL and Java agree)."""
    result = validate_path(v1.leaf2.cert, [v1.inter.cert], [v1.root.cert], dt.datetime.now(dt.UTC))
    assert not result.ok
    assert "CN=v1 inter has no basicConstraints and is not a trust anchor" in result.detail


def test_v1_leaf_cannot_be_an_anchor_for_others(v1: V1) -> None:
    assert trust.anchor_problem(v1.leaf.cert) == "has no basicConstraints and is not self-signed"


# --- policy rules -------------------------------------------------------------------------------------

POLICY_ROOT = cert("Policy Root")


def _policy(chain: list[Issued], purposes=frozenset({"server", "client"}), lowered=frozenset(), anchored=True):
    return trust.policy_findings([c.cert for c in chain], "ssl.crt", anchored, purposes, lowered)


POLICY: dict[str, tuple[Callable[[], list[Issued]], set[str], list[tuple[str, str]]]] = {
    "rsa 2048 sha256": (lambda: [cert("ok.example.com", POLICY_ROOT, ca=False), POLICY_ROOT], {"server", "client"}, []),
    "ec p-256 and p-384": (lambda: [cert("ec.example.com", EC_ROOT, kind="ec", ca=False), EC_ROOT], {"server"}, []),
    "rsa 1024 leaf": (
        lambda: [cert("weak.example.com", POLICY_ROOT, kind="rsa1024", ca=False), POLICY_ROOT], {"server"},
        [("weak-rsa-key", "CN=weak.example.com has a 1024-bit RSA key, below 2048 (policy rule weak-rsa-key)")],
    ),
    "secp256k1 leaf": (
        lambda: [cert("k1.example.com", POLICY_ROOT, kind="secp256k1", ca=False), POLICY_ROOT], {"server"},
        [("weak-ec-curve", "has an EC key on curve secp256k1, not P-256, P-384 or P-521 (policy rule weak-ec-curve)")],
    ),
    "sha1 leaf": (
        lambda: [SHA1_LEAF, POLICY_ROOT], {"server"},
        [("weak-signature", "CN=sha1.example.com is signed with SHA1 (policy rule weak-signature)")],
    ),
    "sha1 on the anchor only": (lambda: [cert("a.example.com", SHA1_ROOT, ca=False), SHA1_ROOT], {"server"}, []),
    "server-only EKU for the ssl pair": (
        lambda: [cert("srv.example.com", POLICY_ROOT, ca=False, eku=[x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                 POLICY_ROOT], {"server", "client"},
        [("key-usage", "CN=srv.example.com has an extendedKeyUsage without clientAuth (policy rule key-usage)")],
    ),
    "server-only EKU for the web pair": (
        lambda: [cert("srv.example.com", POLICY_ROOT, ca=False, eku=[x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                 POLICY_ROOT], {"server"}, [],
    ),
    "client-only EKU for the web pair": (
        lambda: [cert("cli.example.com", POLICY_ROOT, ca=False, eku=[x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                 POLICY_ROOT], {"server"},
        [("key-usage", "has an extendedKeyUsage without serverAuth (policy rule key-usage)")],
    ),
    "keyUsage only keyCertSign": (
        lambda: [cert("odd.example.com", POLICY_ROOT, ca=False, ku=x509.KeyUsage(
            False, False, False, False, False, True, False, False, False)), POLICY_ROOT], {"server"},
        [("key-usage", "has a keyUsage that forbids TLS server use (needs one of digital_signature, key_encipherment, "
                       "key_agreement) (policy rule key-usage)")],
    ),
    "no EKU, no KU": (lambda: [cert("old.example.com", POLICY_ROOT, ca=False, ku=None, eku=None), POLICY_ROOT],
                      {"server", "client"}, []),
}

SHA1_WORK = Path(tempfile.mkdtemp(prefix="sha1-"))
SHA1_ROOT = openssl_signed(SHA1_WORK, "SHA1 Root", None, ca=True)
SHA1_LEAF = openssl_signed(SHA1_WORK, "sha1.example.com", POLICY_ROOT)


@pytest.mark.parametrize("label", list(POLICY))
def test_policy_rules(label: str) -> None:
    build, purposes, expected = POLICY[label]
    chain = build()
    assert validate_path(chain[0].cert, [], [chain[-1].cert], dt.datetime.now(dt.UTC)).ok  # path rules hold
    findings = _policy(chain, purposes=frozenset(purposes))
    assert [(f.code, f.level) for f in findings] == [(code, Level.ERROR) for code, _ in expected]
    for finding, (_, text) in zip(findings, expected, strict=True):
        assert text in finding.reason, finding.reason
    lowered = _policy(chain, purposes=frozenset(purposes), lowered=frozenset(code for code, _ in expected))
    assert all(f.level is Level.WARNING for f in lowered)


def test_rsa_1024_anchor_is_named_too() -> None:
    weak_root = cert("Weak Root", kind="rsa1024")
    findings = _policy([cert("a.example.com", weak_root, ca=False), weak_root])
    assert [f.code for f in findings] == ["weak-rsa-key"] and "CN=Weak Root" in findings[0].reason


def test_sha1_self_signed_unanchored_top_is_not_judged() -> None:
    findings = _policy([cert("a.example.com", SHA1_ROOT, ca=False), SHA1_ROOT], anchored=False)
    assert findings == []


def test_desired_state_lowers_by_rule_name() -> None:
    from sslreconciler.config.desired import DesiredState

    desired = DesiredState.model_validate({"policy": {"weak_signature": "warning", "key_usage": "warning"}})
    assert desired.policy.lowered == {"weak-signature", "key-usage"}
    assert set(trust.POLICY_RULES) == {n.replace("_", "-") for n in DesiredState().policy.model_dump()}
    assert desired.pair("ssl").tls_purposes == {"server", "client"}
    assert desired.pair("ssl-web").tls_purposes == {"server"}


def test_hostile_pile_of_same_key_issuers_is_bounded() -> None:
    """Issuers that all sign each other: the search gives up after MAX_STEPS instead of trying 12! orders."""
    k = cert("Loop CA")
    pile = [cert("Loop CA", the_key=k.key) for _ in range(12)]  # self-signed, same name and key: all link up
    leaf = cert("loop.example.com", k, ca=False)
    result = validate_path(leaf.cert, [c.cert for c in pile], [OTHER_ROOT.cert], dt.datetime.now(dt.UTC))
    assert not result.ok and f"gave up after {trust.MAX_STEPS}" in result.detail, result.detail
