"""Drift judged against what should be (issue 25, problem 3): the collect filters, table-tested.

Every node's trusted set is compared with the expected one (the staging area's CAs, plus what the node's
``sslreconciler_trust_extra`` adds), never with a majority: 1, 2 and 3 nodes, a node down, CAs extra and
missing by subject and SHA-256. The health documents are built with the product's own ``trust_set`` from real
certificates. The cases marked "old majority" are the ones the majority rule blamed on the wrong node.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from typing import Any

import pytest

from sslreconciler.reconcile.trustset import trust_set

from conftest import REPO
from pkitools import make_ca

CA, CA2, FOREIGN, SITE = (
    make_ca(n)
    for n in ("ca.node1.example.com", "ca2.node1.example.com", "ca.foreign.example.org", "ca.site.example.net")
)
HOST = make_ca("node1.example.com", issuer=CA)  # any non-CA certificate staged beside the CA, with its key


def _filters() -> Any:
    spec = importlib.util.spec_from_file_location("fleet_filters", REPO / "ansible" / "plugins" / "filter" / "fleet.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


F = _filters()


def pem(issued: Any) -> str:
    return str(issued.cert_pem().decode())


def sha(issued: Any) -> str:
    return hashlib.sha256(issued.cert_der()).hexdigest()


def node(*cas: Any, status: str = "ok") -> dict[str, Any]:
    """A /health document trusting ``cas`` (alias = the CN), as the daemon makes it."""
    entries = {c.cert.subject.rfc4514_string().removeprefix("CN="): c.cert_der() for c in cas}
    return {
        "status": status,
        "trust": trust_set(entries),
        "artifacts": {"ssl.keystore": {"certificate": {"not_after": "2029-01-02T00:00:00Z"}}},
    }


DOWN: dict[str, Any] = {}
EXPECTED = F.fleet_expected({"ca.node1.example.com": pem(CA), "node1.example.com": pem(HOST)}, None)


def test_the_expected_set_is_the_staging_areas_cas() -> None:
    assert [(e["name"], e["fingerprint"]) for e in EXPECTED] == [("ca.node1.example.com", sha(CA))]
    staged = {"ca.node1.example.com": pem(CA), "ca2.node1.example.com": pem(CA2), "node1.example.com": pem(HOST)}
    rotating = F.fleet_expected(staged, {"current": "ca2.node1.example.com", "previous": "ca.node1.example.com"})
    assert [e["name"] for e in rotating] == ["ca2.node1.example.com", "ca.node1.example.com"]
    retired = F.fleet_expected(
        staged, {"current": "ca2.node1.example.com", "previous": None, "retired": ["ca.node1.example.com"]}
    )
    assert [e["name"] for e in retired] == ["ca2.node1.example.com"]
    assert F.fleet_expected({"node1.example.com": pem(HOST)}, None) == []  # no CA staged: nothing expected
    assert F.fleet_expected({"a": pem(CA), "b": pem(CA2)}, None) == []  # two CAs and no record: pki refuses too


CASES = [
    # (what, {node: document}, {node: extra PEMs}, {node: verdict})
    ("1 node, ok", {"a": node(CA)}, {}, {"a": "ok"}),
    ("1 node, drifted (it is its own majority)", {"a": node(CA, FOREIGN)}, {}, {"a": "DRIFT"}),
    ("1 node, down", {"a": DOWN}, {}, {"a": "unreachable"}),
    ("2 nodes, ok", {"a": node(CA), "b": node(CA)}, {}, {"a": "ok", "b": "ok"}),
    (
        "2 nodes, old majority: a tie settled by hex order",
        {"a": node(CA), "b": node(CA, FOREIGN)},
        {},
        {"a": "ok", "b": "DRIFT"},
    ),
    (
        "2 nodes, old majority: one down, an extra CA on the other (the issue's case)",
        {"a": node(CA, FOREIGN), "b": DOWN},
        {},
        {"a": "DRIFT", "b": "unreachable"},
    ),
    (
        "3 nodes, old majority: two drifted alike outvote the right one",
        {"a": node(CA), "b": node(CA, FOREIGN), "c": node(CA, FOREIGN)},
        {},
        {"a": "ok", "b": "DRIFT", "c": "DRIFT"},
    ),
    (
        "3 nodes, one down, one missing the CA",
        {"a": node(CA), "b": DOWN, "c": node(FOREIGN)},
        {},
        {"a": "ok", "b": "unreachable", "c": "DRIFT"},
    ),
    ("3 nodes, all drifted the same way", {h: node(CA, FOREIGN) for h in "abc"}, {}, dict.fromkeys("abc", "DRIFT")),
    (
        "an extra CA the node's own inventory expects is no drift",
        {"a": node(CA, SITE), "b": node(CA)},
        {"a": [pem(SITE)]},
        {"a": "ok", "b": "ok"},
    ),
    (
        "a node that lacks the extra CA it should have drifts",
        {"a": node(CA), "b": node(CA)},
        {"a": [pem(SITE)]},
        {"a": "DRIFT", "b": "ok"},
    ),
    (
        "a node answering without a trust object is not judged",
        {"a": {"status": "failed"}, "b": node(CA)},
        {},
        {"a": "unknown", "b": "ok"},
    ),
]


@pytest.mark.parametrize(("docs", "extras", "verdicts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_node_is_judged_against_the_expected_set(
    docs: dict[str, Any], extras: dict[str, list[str]], verdicts: dict[str, str]
) -> None:
    rows = F.fleet_report(docs, EXPECTED, extras)
    assert {r["node"]: r["verdict"] for r in rows} == verdicts
    assert {r["node"]: r["drift"] for r in rows} == {n: v == "DRIFT" for n, v in verdicts.items()}
    json.dumps(rows)  # the rows go out as JSON (sslreconciler_report_json)


def test_drift_names_the_cas_extra_and_missing_by_subject_and_fingerprint() -> None:
    rows = F.fleet_report({"a": node(CA2, FOREIGN), "b": DOWN}, EXPECTED, {})
    a = rows[0]
    assert sorted((c["subject"], c["fingerprint"], c["alias"]) for c in a["extra"]) == [
        ("CN=ca.foreign.example.org", sha(FOREIGN), "ca.foreign.example.org"),
        ("CN=ca2.node1.example.com", sha(CA2), "ca2.node1.example.com"),
    ]
    assert a["missing"] == [{"subject": "CN=ca.node1.example.com", "fingerprint": sha(CA)}]
    table = F.fleet_table(rows).splitlines()
    assert table[0].split() == ["NODE", "STATUS", "TRUST", "CA", "SET", "SSL", "EXPIRY", "WEB", "EXPIRY", "DRIFT"]
    assert table[1].split()[-1] == "DRIFT" and table[2].split()[:2] == ["b", "unreachable"]
    assert table[2].split()[-1] == "unreachable"
    assert f"a: extra CN=ca.foreign.example.org (SHA-256 {sha(FOREIGN)})" in table
    assert f"a: missing CN=ca.node1.example.com (SHA-256 {sha(CA)})" in table
    assert F.fleet_summary(rows) == "2 nodes: 0 ok, 1 drifted, 1 unreachable (b)"


def test_a_node_without_per_ca_entries_is_judged_by_its_fingerprint() -> None:
    """An older node's /health has only fingerprint and aliases: ok or DRIFT still, without the CA lists."""
    old_ok = {"status": "ok", "trust": {"fingerprint": sha(CA), "authorities": ["ca"]}}
    old_drift = {"status": "ok", "trust": {"fingerprint": "0" * 64, "authorities": ["ca", "x"]}}
    rows = F.fleet_report({"a": old_ok, "b": old_drift}, EXPECTED, {})
    assert [(r["verdict"], r["extra"], r["missing"]) for r in rows] == [("ok", [], []), ("DRIFT", [], [])]


def test_no_expected_set_judges_nobody() -> None:
    rows = F.fleet_report({"a": node(CA), "b": DOWN}, [], {})
    assert [r["verdict"] for r in rows] == ["unknown", "unreachable"]
    assert "1 not judged" in F.fleet_summary(rows)


def test_the_trust_object_names_each_ca() -> None:
    doc = trust_set({"ca": CA.cert_der(), "copy": CA.cert_der(), "foreign": FOREIGN.cert_der()})
    assert doc["authorities"] == ["ca", "copy", "foreign"]
    assert doc["cas"] == [
        {"alias": "ca", "subject": "CN=ca.node1.example.com", "fingerprint": sha(CA)},
        {"alias": "copy", "subject": "CN=ca.node1.example.com", "fingerprint": sha(CA)},
        {"alias": "foreign", "subject": "CN=ca.foreign.example.org", "fingerprint": sha(FOREIGN)},
    ]
    assert doc["fingerprint"] == hashlib.sha256(b"".join(sorted({CA.cert_der(), FOREIGN.cert_der()}))).hexdigest()


def test_health_findings_are_one_line_each() -> None:
    doc = {
        "status": "degraded",
        "findings": [
            {"level": "error", "code": "untrusted", "file": "ssl.crt", "reason": "not verified against a CA"},
            {"level": "warning", "code": "expiring", "file": "ssl-web.crt", "reason": "expires in 9 days"},
        ],
    }
    assert F.health_findings(doc) == [
        "error untrusted ssl.crt: not verified against a CA",
        "warning expiring ssl-web.crt: expires in 9 days",
    ]
    assert F.health_findings({"status": "failed"}) == ["(no findings)"]
