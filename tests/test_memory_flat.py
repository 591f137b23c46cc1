"""Memory flat under change (issue 27): what the process memo keeps is bounded by the current inputs.

An in-process ``Reconciler`` (the daemon's, kept between reconciles) rotates a CA through authorities/:
each time a new self-signed CA is renamed in and the previous one removed, so each run is a new anchor set
and every peer's chain a new verdict key. Counts, not bytes: after every run each memo table holds the
current inputs' entries plus at most the two rotated CAs before (the one-run-back margin), the grace
clock only the current sources, and the state-dir record only what the run used. On main's code every
table grew by one CA a rotation (certs, derived, subject hashes, their record) and never shrank.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sslreconciler.config.desired import load_desired_state
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.reconciler import Reconciler
from sslreconciler.reconcile.record import RECORD, load_record

from pkitools import Issued, make_ca, make_host, seed_node, write

ROTATIONS = 300
PEERS = 2  # peer certificates in authorities/: each one's chain is verified against the anchor set


def sizes(r: Reconciler) -> dict[str, int]:
    m: ReconcileCache = r.memo
    return {
        "certs": len(m.certs),
        "derived": len(m.derived),
        "verdicts": len(m.verdicts),
        "subject_hashes": len(m.subject_hashes),
        "keys": len(m._keys),
        "stores": len(m.stores),
        "seen": len(r.seen),
    }


@pytest.fixture
def rotating(tmp_path: Path, ca: Issued):
    """A seed node with a web pair and PEERS peers beside the CA, its Reconciler, and a rotate(i) that
    renames CA i in and removes CA i-1, then reconciles."""
    node = seed_node(tmp_path / "n", "mem.example.com", ca, web=True)
    authorities = node.ssl_dir / "authorities"
    for i in range(PEERS):
        write(authorities / f"peer{i}.crt", make_host(ca, f"peer{i}.example.com", "ec").cert_pem())
    desired = load_desired_state(node.desired)
    r = Reconciler(node.ssl_dir, tmp_path / "state", node.desired)
    staging = node.ssl_dir / ".incoming"
    staging.mkdir()
    cas: dict[int, Issued] = {}

    def rotate(i: int) -> None:
        cas[i] = cas.get(i) or make_ca(f"rotating CA {i}", kind="ec")
        write(staging / "ca.crt", cas[i].cert_pem())
        os.rename(staging / "ca.crt", authorities / f"rotating-{i}.crt")
        (authorities / f"rotating-{i - 1}.crt").unlink(missing_ok=True)
        outcome = r.run(desired)
        report = outcome.report
        assert report.status == "ok", report.render_text()
        shown = {c["fingerprint"] for c in (report.trust or {}).get("cas", [])}
        assert cas[i].fingerprint() in shown, "the new CA is not in the trust set"
        assert i == 0 or cas[i - 1].fingerprint() not in shown, "the previous CA is still trusted"

    return node, r, rotate


def source_files(node) -> int:
    """The certificate files the current inputs hold: ssl.crt, ssl-web.crt and authorities/*.crt."""
    return 2 + sum(name.endswith(".crt") for name in os.listdir(node.ssl_dir / "authorities"))


def test_memo_tables_stay_at_what_the_current_inputs_hold_over_300_rotations(rotating) -> None:
    node, r, rotate = rotating
    growth: list[dict[str, int]] = []
    for i in range(ROTATIONS):
        rotate(i)
        growth.append({**sizes(r), "record_bytes": len((r.state_dir / RECORD).read_bytes())})
    files = source_files(node)  # the same after every rotation: one rotating CA at a time
    bounds = {
        "certs": files + 2,  # the current files' certificates, plus the two rotated CAs the margin keeps
        "derived": files + 2,  # what was derived from each of those parsed certificates
        "subject_hashes": files + 2,
        "verdicts": 3 * PEERS,  # each peer's chain against the last three anchor sets
        "keys": 2,  # ssl.key and ssl-web.key
        "stores": 5,  # the seed layout's outputs
        "seen": files + 2,  # the grace clock: only the current sources (the two keys too)
    }
    over = {
        table: (growth[0][table], growth[-1][table], bound)
        for table, bound in bounds.items()
        if max(g[table] for g in growth) > bound
    }
    assert not over, f"table: (after the first rotation, after {ROTATIONS}, bound): {over}"
    # steady from the fourth rotation on: the same counts, and a record of the same size, 300 times over
    changed = [(i, g) for i, g in enumerate(growth) if i > 3 and g != growth[3]]
    assert not changed, f"after rotation 3: {growth[3]}; then {changed[:1]} ... {changed[-1:]}"


def test_a_pair_swapped_back_is_not_parsed_again_and_one_gone_for_two_runs_is_forgotten(rotating, ca) -> None:
    node, r, rotate = rotating
    web_crt, web_key = node.ssl_dir / "ssl-web.crt", node.ssl_dir / "ssl-web.key"
    rotate(0)
    first = (web_key.read_bytes(), web_crt.read_bytes())
    digest = hashlib.sha256(first[1]).digest()
    parsed = r.memo.certs[digest]
    other = make_host(ca, "mem.example.com")

    def install(key: bytes, crt: bytes) -> None:
        write(web_key, key, 0o600)
        write(web_crt, crt)

    install(other.key_pem(), other.cert_pem())
    rotate(1)  # the first pair out
    install(*first)  # and back (a rollback): the same objects, not a new parse
    rotate(2)
    assert r.memo.certs[digest] is parsed
    install(other.key_pem(), other.cert_pem())  # the first pair out for good
    for i in (3, 4):  # two runs do not ask for it: kept, the margin
        rotate(i)
        assert r.memo.certs[digest] is parsed
    rotate(5)  # and the third run starts without it
    assert digest not in r.memo.certs
    assert not any(entry.obj is c for entry in r.memo.derived.values() for c in parsed)


def test_the_record_keeps_what_the_last_run_used_and_a_one_shot_still_reuses_it(rotating) -> None:
    node, r, rotate = rotating
    for i in range(6):
        rotate(i)
    doc = json.loads((r.state_dir / RECORD).read_bytes())
    assert len(doc["verdicts"]) == PEERS  # this anchor set's verdicts only, not one set per rotation
    assert len(doc["subject_hashes"]) <= source_files(node) - 2  # at most each authorities/ file's
    one_shot = Reconciler(node.ssl_dir, r.state_dir, node.desired, memo=load_record(r.state_dir))
    assert len(one_shot.memo.verdicts) == PEERS
    outcome = one_shot.run(load_desired_state(node.desired))
    assert outcome.report.status == "ok"
    assert json.loads((r.state_dir / RECORD).read_bytes())["verdicts"] == doc["verdicts"]  # none lost
