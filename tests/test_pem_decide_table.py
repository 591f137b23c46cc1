"""Table tests of decide for the PEM outputs and the PEM CA bundle (issue 24), in memory, no disk: each row
is an observed node -> the action and status of each PEM output, and the one swap (or none)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from test_decide_table import (
    CA,
    HOST,
    NOW_TS,
    OTHER_CA,
    PRIVATE,
    PUBLIC,
    Node,
    _wrong_mode,
    key_pem,
    pem,
    run,
    seed,
    settled,
)

from sslreconciler.model.findings import FindingCode
from sslreconciler.model.status import Status
from sslreconciler.reconcile.decide import Context, decide
from sslreconciler.reconcile.pem import bundle_pem
from sslreconciler.reconcile.state import PemObserved
from sslreconciler.reconcile.steps import SwapPemSet, WriteFile

from trustkit import cert

SSL_PEM = [f"live/ssl.{s}" for s in ("key", "fullchain.pem", "crt", "chain.pem")]
WEB_PEM = [f"live/ssl-web.{s}" for s in ("key", "fullchain.pem", "crt", "chain.pem")]
WEB = cert(HOST, CA, ca=False)


def _web_pair(node: Node, leaf=WEB) -> Node:
    return node.source("ssl-web.key", key_pem(leaf), PRIVATE).source("ssl-web.crt", pem(leaf))


def _bad_ssl(node: Node) -> Node:
    return node.source("ssl.key", key_pem(cert(HOST, CA, ca=False)))  # a key of another certificate


@dataclass(frozen=True)
class Row:
    name: str
    node: Callable[[], Node]
    actions: dict[str, tuple[str, Status]]  # output -> (action, status); names not listed: not checked
    swap: bool  # one SwapPemSet expected
    message: str = ""


ROWS = [
    Row("first run: the whole set written", seed, {n: ("written", Status.OK) for n in SSL_PEM + WEB_PEM}, True),
    Row("no-op: nothing swapped", lambda: settled(seed()), {n: ("unchanged", Status.OK) for n in SSL_PEM + WEB_PEM},
        False),
    Row("a key file's mode is wrong: the set is swapped", lambda: _wrong_mode(settled(seed()), "live/ssl.key", 0o644),
        {"live/ssl.key": ("written", Status.OK), "live/ssl.crt": ("unchanged", Status.OK)}, True,
        "mode 0644 -> 0600"),
    Row("a bad pair with last good files: kept, nothing swapped", lambda: _bad_ssl(settled(seed())),
        {n: ("kept-last-good", Status.DEGRADED) for n in SSL_PEM}, False, "ssl.crt"),
    Row("a bad pair with none: failed", lambda: _bad_ssl(seed()),
        {n: ("failed", Status.FAILED) for n in SSL_PEM}, False, "cannot be built"),
    Row("a bad pair beside a good change: kept while the other is written",
        lambda: _web_pair(_bad_ssl(settled(seed()))),
        {"live/ssl.key": ("kept-last-good", Status.DEGRADED), "live/ssl-web.key": ("written", Status.OK)}, True),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_pem_table(row: Row) -> None:
    decision = run(row.node())
    reports = {a.name: a for a in decision.artifacts}
    for name, (action, status) in row.actions.items():
        assert (reports[name].action, reports[name].status) == (action, status), reports[name]
        assert row.message in reports[name].message or row.message in " ".join(
            reports[n].message for n in row.actions
        ), reports[name]
    swaps = [s for s in decision.steps if isinstance(s, SwapPemSet)]
    assert len(swaps) == (1 if row.swap else 0), decision.steps
    if swaps:
        (swap,) = swaps
        assert set(swap.written) == {n for n, a in reports.items() if a.action == "written" and n.startswith("live/")}


def test_a_swap_carries_the_blocked_pairs_last_good_bytes_and_the_modes() -> None:
    node = _web_pair(_bad_ssl(settled(seed())))
    old = {n: node.outputs[n].data for n in SSL_PEM}
    (swap,) = [s for s in run(node).steps if isinstance(s, SwapPemSet)]
    files = {f"live/{m}": (data, mode) for m, data, mode in swap.files}
    assert set(files) == set(SSL_PEM + WEB_PEM)  # the whole set, every time
    assert {n: files[n][0] for n in SSL_PEM} == old
    assert {n: files[n][1] for n in files} == {n: PRIVATE if n.endswith(".key") else PUBLIC for n in files}
    assert x509.load_pem_x509_certificate(files["live/ssl-web.crt"][0]).subject == WEB.cert.subject
    assert files["live/ssl-web.crt"][0] == pem(WEB)


def test_something_else_at_live_fails_every_pem_output_and_swaps_nothing() -> None:
    node = seed()
    observed = node.observed()
    assert observed.pem is not None
    observed.pem = PemObserved("live", problem="is in the way: not this program's link")
    decision = decide(observed, node.state(), Context(HOST, dt.datetime.fromtimestamp(NOW_TS, dt.UTC)))
    reports = {a.name: a for a in decision.artifacts}
    assert {reports[n].action for n in SSL_PEM + WEB_PEM} == {"failed"}
    assert not [s for s in decision.steps if isinstance(s, SwapPemSet)]
    assert any(f.file == "live" and f.code == FindingCode.NOT_A_FILE for f in decision.findings)


def test_dry_run_would_write() -> None:
    reports = {a.name: a for a in run(seed(), dry_run=True).artifacts}
    assert {reports[n].action for n in SSL_PEM + WEB_PEM + ["authorities.pem"]} == {"would-write"}


def test_bundle_holds_the_accepted_cas_in_an_order_of_the_set_alone() -> None:
    rogue = cert("rogue.example.com", None, ca=False)  # self-signed, not a CA: refused
    node = settled(seed()).source("authorities/other.crt", pem(OTHER_CA)).source("authorities/rogue.crt", pem(rogue))
    decision = run(node)
    (write,) = [s for s in decision.steps if isinstance(s, WriteFile)]
    held = x509.load_pem_x509_certificates(write.data)
    assert sorted(c.subject.rfc4514_string() for c in held) == ["CN=Other CA", "CN=Table CA"]
    assert any(f.file == "authorities/rogue.crt" for f in decision.findings)
    assert bundle_pem({"a": b"1", "b": b"2"}) == bundle_pem({"x": b"2", "y": b"1", "z": b"1"})  # the set, not names


def test_bundle_unchanged_and_its_mode_fixed_by_a_rewrite() -> None:
    node = settled(seed())
    assert not [s for s in run(node).steps if isinstance(s, WriteFile)]
    node = _wrong_mode(node, "authorities.pem", 0o600)
    (write,) = [s for s in run(node).steps if isinstance(s, WriteFile)]
    assert write.mode == PUBLIC and write.existed
    assert dataclasses.replace(write).data == node.outputs["authorities.pem"].data
