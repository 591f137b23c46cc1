"""The seams of the reconcile core's pure side, each at the level where it lives:

- ``facts.CertFacts``, the one object that derives certificate facts: a source is parsed once per
  content (a failure never remembered), and a remembered chain verdict never outlives its chain;
- the state-dir record: its JSON is a contract between versions, read into the memo's records and
  written back byte for byte as before.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

import pytest

from sslreconciler.model.findings import FindingCode, SourceError
from sslreconciler.pki import trust as rules
from sslreconciler.reconcile import record
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.memo import ReconcileCache, RecordedStore, Verdict

from pkitools import NOW
from trustkit import cert

CA = cert("Seams CA")
LEAF = cert("leaf.example.com", CA, ca=False, not_before=NOW - dt.timedelta(days=1), days=30)


def test_a_source_is_parsed_once_per_content_and_a_failure_is_not_remembered() -> None:
    memo = ReconcileCache()
    facts = CertFacts(memo)
    first = facts.certificates(LEAF.cert_pem(), "a.crt")
    assert facts.certificates(LEAF.cert_pem(), "b.crt") is first  # same bytes: the same objects
    assert CertFacts(memo).certificates(LEAF.cert_pem(), "a.crt") is first  # the next reconcile too
    for _ in range(2):  # looked at afresh each time: a file being copied in must not stay "garbage"
        with pytest.raises(SourceError) as raised:
            facts.certificates(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "bad.crt")
        assert raised.value.finding.code in (FindingCode.GARBAGE, FindingCode.NO_CERTIFICATE)
    assert len(memo.certs) == 1


def test_a_remembered_verdict_holds_only_while_its_chain_is_valid() -> None:
    memo = ReconcileCache()
    facts = CertFacts(memo)
    anchors = rules.Anchors.of([CA.cert])
    fresh = facts.verified(LEAF.cert, [], anchors, NOW)
    assert fresh.ok and fresh.chain  # verified now, and remembered with its chain's window
    (verdict,) = memo.verdicts.values()
    assert verdict == Verdict(
        fresh.detail,
        max(c.not_valid_before_utc for c in fresh.chain).timestamp(),
        min(c.not_valid_after_utc for c in fresh.chain).timestamp(),
    )
    again = facts.verified(LEAF.cert, [], anchors, NOW + dt.timedelta(days=1))
    assert again.ok and again.detail == fresh.detail and not again.chain  # from the memo: no path search
    expired = facts.verified(LEAF.cert, [], anchors, NOW + dt.timedelta(days=60))
    assert not expired.ok, "a verdict outlived its leaf"
    other = rules.Anchors.of([cert("Other CA").cert])
    assert not facts.verified(LEAF.cert, [], other, NOW).ok  # remembered per set of anchors


# The record as the code before the dataclasses wrote it (json.dumps of tuples and lists, default separators).
CHAIN, ANCHORS, DER = "ab" * 32, "cd" * 32, "ef" * 32
OLD_RECORD = (
    '{"stores": {"/srv/ssl/ssl.keystore": ["' + "01" * 32 + '", "' + "02" * 32 + '"]}, '
    '"verdicts": {"' + CHAIN + ANCHORS + '": ["path: CN=leaf -> CN=Seams CA", 1700000000.0, 1800000000.5]}, '
    '"subject_hashes": {"' + DER + '": "1a2b3c4d"}}'
).encode()


def _state_dir(tmp_path: Path, raw: bytes) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    for name, data in ((record.RECORD_KEY, secrets.token_bytes(32)), (record.RECORD, raw)):
        fd = os.open(state / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
    return state


def test_the_record_reads_into_named_records_and_writes_back_byte_for_byte(tmp_path: Path) -> None:
    memo = record.load_record(_state_dir(tmp_path, OLD_RECORD))
    assert memo.record_trusted, memo.record_note
    assert memo.recorded == {"/srv/ssl/ssl.keystore": RecordedStore("01" * 32, "02" * 32)}
    key = (bytes.fromhex(CHAIN), bytes.fromhex(ANCHORS))
    assert memo.verdicts == {key: Verdict("path: CN=leaf -> CN=Seams CA", 1700000000.0, 1800000000.5)}
    assert memo.subject_hashes == {bytes.fromhex(DER): "1a2b3c4d"}
    # a run that asked for the same verdict and hash saves the record unchanged
    memo.used_verdicts.add(key)
    memo.used_subject_hashes.add(bytes.fromhex(DER))
    assert record._payload(memo) == OLD_RECORD


def test_a_malformed_record_is_dropped_whole(tmp_path: Path) -> None:
    bad = OLD_RECORD.replace(b'"1a2b3c4d"}}', b'"1a2b3c4d"}, "verdicts": {"zz": [1]}}')
    memo = record.load_record(_state_dir(tmp_path, bad))
    assert memo.recorded == {} and memo.verdicts == {} and memo.subject_hashes == {}
