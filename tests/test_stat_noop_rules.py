"""The stat index's rules as tables (pure: reconcile/stat_index.py, file_facts.py, daemon/schedule.py)."""

from __future__ import annotations

import json
import os

import pytest

from sslreconciler.daemon.schedule import full_read_due
from sslreconciler.reconcile.file_facts import analyze, from_json, to_json
from sslreconciler.reconcile.stat_index import RACY_MARGIN_NS, IndexEntry, StatIndex, index_from_json

from pkitools import make_ca, make_host

TAKEN = 1_800_000_000 * 10**9
OLD = TAKEN - RACY_MARGIN_NS - 1  # strictly older than the moment minus the margin: clean
RECORDED = (1, 2, 300, OLD, OLD)  # dev, inode, size, mtime_ns, ctime_ns
CA = make_ca("ca.rules.example.com", kind="ec")
FACTS = analyze(("authorities/a.crt", CA.cert_pem(), ()))


def _stat(dev: int, ino: int, size: int, mtime: int, ctime: int) -> os.stat_result:
    return os.stat_result((0o100644, ino, dev, 1, 0, 0, size, 0, 0, 0, 0.0, 0.0, 0.0, 0, mtime, ctime))


@pytest.mark.parametrize(
    ("now", "policy", "believed"),
    [
        (RECORDED, (), True),
        ((9, 2, 300, OLD, OLD), (), False),  # another device
        ((1, 9, 300, OLD, OLD), (), False),  # another inode: renamed over
        ((1, 2, 301, OLD, OLD), (), False),  # another size
        ((1, 2, 300, OLD - 5, OLD), (), False),  # another mtime
        ((1, 2, 300, OLD, OLD + 1), (), False),  # another ctime: written with a forged mtime, chmod
        (RECORDED, ("sha1-signature",), False),  # judged under another policy
    ],
)
def test_all_five_and_the_policy_must_match(now, policy, believed) -> None:
    index = StatIndex(TAKEN, {"authorities/a.crt": IndexEntry(RECORDED, FACTS)})
    assert (index.lookup("authorities/a.crt", _stat(*now), policy) is FACTS) is believed


@pytest.mark.parametrize(
    ("mtime", "ctime", "believed"),
    [
        (OLD, OLD, True),
        (OLD, TAKEN - RACY_MARGIN_NS, False),  # not strictly older than the moment minus the margin: racy
        (OLD, TAKEN - 1, False),  # in the tick of the read
        (OLD, TAKEN + 10**9, False),  # after it (a clock set back)
        (TAKEN + 10**12, OLD, False),  # an mtime forged into the future: always read
        (TAKEN - RACY_MARGIN_NS, OLD, False),
    ],
)
def test_racy_entries_are_never_believed(mtime, ctime, believed) -> None:
    recorded = (1, 2, 300, mtime, ctime)
    index = StatIndex(TAKEN, {"authorities/a.crt": IndexEntry(recorded, FACTS)})
    assert (index.lookup("authorities/a.crt", _stat(*recorded), ()) is not None) is believed


def test_an_unknown_file_is_read() -> None:
    assert StatIndex(TAKEN, {}).lookup("authorities/a.crt", _stat(*RECORDED), ()) is None


@pytest.mark.parametrize(
    ("resync", "every", "full"),
    [(1, 12, False), (11, 12, False), (12, 12, True), (13, 12, False), (24, 12, True),
     (1, 1, True), (2, 1, True), (1, 2, False), (2, 2, True)],
)
def test_every_nth_resync_reads_in_full(resync, every, full) -> None:
    assert full_read_due(resync, every) is full


def test_facts_survive_the_record_as_they_were_computed() -> None:
    leaf = make_host(CA, "leaf.rules.example.com")
    for data in (CA.cert_pem(), CA.cert_der(), leaf.cert_pem() + CA.cert_pem()):
        facts = analyze(("authorities/x.crt", data, ("sha1-signature",)))
        assert facts.problem is None
        assert from_json("authorities/x.crt", json.loads(json.dumps(to_json(facts)))) == facts


def test_a_malformed_entry_is_left_out_the_rest_kept() -> None:
    good = [list(RECORDED), to_json(FACTS)]
    raw = json.dumps({"euid": 7, "taken_ns": TAKEN, "files": {
        "authorities/a.crt": good,
        "authorities/b.crt": [[1, 2, 3], to_json(FACTS)],  # four stat fields short
        "authorities/c.crt": [list(RECORDED), [[], False, [["not base64!"]]]],
        "authorities/d.crt": "nonsense",
    }}).encode()
    index = index_from_json(raw, 7)
    assert set(index.entries) == {"authorities/a.crt"}
    assert index.entries["authorities/a.crt"].facts == FACTS
    assert index_from_json(raw, 8).entries == {}  # made by another euid: its reads are not this one's
    assert index_from_json(b"{not json", 7).entries == {}
    assert index_from_json(b'{"euid": 7, "files": {}}', 7).entries == {}


def test_a_file_with_no_certificate_is_a_problem_not_facts() -> None:
    facts = analyze(("authorities/bad.crt", b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", ()))
    assert facts.problem is not None and facts.problem.file == "authorities/bad.crt" and facts.certs == ()


@pytest.mark.parametrize(
    ("now", "warn_days", "codes"),
    [
        (-1, 30, ["not-yet-valid"]),
        (0, 30, []),
        (10 * 86400, 30, []),
        (100 * 86400 - 30 * 86400, 30, []),  # exactly 30 days left: not expiring
        (100 * 86400 - 30 * 86400 + 1, 30, ["expiring"]),
        (100 * 86400 - 1, 30, ["expiring"]),
        (100 * 86400, 30, ["expiring"]),
        (100 * 86400 + 1, 30, ["expired"]),
        (50 * 86400, 0, []),
    ],
)
def test_validity_from_the_recorded_bounds_is_the_certificates_own(now, warn_days, codes) -> None:
    """``CertFact.validity_at`` (bounds only, a fast path for the common case) says what
    ``verify.validity_findings`` says of the certificate itself, at every edge."""
    import datetime as dt

    from sslreconciler.pki import verify

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    issued = make_ca("bounds.rules.example.com", kind="ec", not_before=start, days=100)
    fact = analyze(("authorities/b.crt", issued.cert_pem(), ())).certs[0]
    at = dt.datetime.fromtimestamp(start.timestamp() + now, dt.UTC)
    mine = fact.validity_at("authorities/b.crt", at, warn_days)
    theirs = verify.validity_findings(issued.cert, "authorities/b.crt", at, warn_days)
    assert mine == theirs
    assert [f.code.value for f in mine] == codes
