"""Table tests of the decide step, in-process and without a disk: an observed node (plain values) and a
desired state go in; the actions, the report each artifact gets and the findings come out.

Each row is ``Input -> reason (finding codes), message, action``, in the style of cert-manager's policy
checks. The last test holds the table to its promise: every action and every finding code appears in
some row, or is named with the test that covers it at the level where it arises.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import os
import tempfile
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from sslreconciler.config.desired import DesiredState
from sslreconciler.model.findings import FindingCode, Level, error
from sslreconciler.model.status import Status
from sslreconciler.reconcile.decide import Context, Decision, decide
from sslreconciler.reconcile.execute import encode
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.settle import hooks_due, settle
from sslreconciler.reconcile.state import (
    Inputs,
    LinkDir,
    Observed,
    OutputFile,
    Ownership,
    PemObserved,
    SourceFile,
    TrustDir,
)
from sslreconciler.reconcile.steps import (
    FixAttributes,
    MakeLink,
    RemoveLink,
    Step,
    StepFailed,
    SwapPemSet,
    WriteFile,
    WriteStore,
)

from pkitools import Issued
from trustkit import cert, openssl_signed

HOST = "host.example.com"
PASSWORD = "changeit"
CA = cert("Table CA")
# The table's "now": a day ahead of the import, so that a certificate openssl signs later in the run (its
# notBefore is the wall clock: see _sha1_leaf) is already valid at it, and every other certificate (made
# relative to the wall clock or to NOW) is dated as its row says.
NOW_TS = time.time() + 86_400
OLD = NOW_TS - 3600  # a source's mtime: well outside any grace window
SSL = cert(HOST, CA, ca=False)
OTHER_CA = cert("Other CA")
PRIVATE, PUBLIC = 0o600, 0o644


@functools.cache
def _sha1_leaf() -> Issued:
    """cryptography no longer signs with SHA-1: openssl does, once, when the row that needs it runs."""
    with tempfile.TemporaryDirectory(prefix="sha1-") as work:
        return openssl_signed(Path(work), HOST, CA)


def pem(issued: Issued) -> bytes:
    return issued.cert_pem()


def key_pem(issued: Issued) -> bytes:
    return issued.key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def fake_stat(mode: int, size: int = 1, uid: int = 0, gid: int = 0, ino: int = 1) -> os.stat_result:
    return os.stat_result((0o100000 | mode, ino, 1, 1, uid, gid, size, int(OLD), int(OLD), int(OLD)))


@dataclass
class Node:
    """An observed node, built up by a row: sources by name, outputs by name, links, owner."""

    desired: dict[str, object] = field(default_factory=lambda: {"hostname": HOST})
    files: dict[str, SourceFile] = field(default_factory=dict)
    outputs: dict[str, OutputFile] = field(default_factory=dict)
    links: dict[str, LinkDir] = field(default_factory=dict)
    owner: Ownership = field(default_factory=Ownership)
    findings: list = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    trust_is_dir: bool = True

    def source(self, name: str, data: bytes, mode: int = 0o644, mtime: float = OLD) -> Node:
        self.files[name] = SourceFile(name, data=data, mode=mode, mtime=mtime)
        return self

    def problem(self, name: str, code: FindingCode, reason: str = "is unusable", mtime: float = OLD) -> Node:
        self.files[name] = SourceFile(name, problem=error(name, reason, code), mtime=mtime)
        return self

    def without(self, name: str) -> Node:
        self.files[name] = SourceFile(name, present=False)
        return self

    def state(self) -> DesiredState:
        return DesiredState.model_validate(self.desired)

    def observed(self) -> Observed:
        desired = self.state()
        trust_files = tuple(sorted(n for n in self.files if n.startswith("authorities/")))
        inputs = Inputs(
            files=dict(self.files),
            trust_dirs=[TrustDir("authorities", trust_files, self.trust_is_dir)],
            passwords={name: PASSWORD for name in desired.output_files()},
        )
        outputs = {n: self.outputs.get(n, OutputFile(n, f"/ssl/{n}", "absent")) for n in desired.output_files()}
        pem_files = desired.pem_files()
        pem = None
        if desired.pem_dir is not None:  # the PEM outputs: files of the version ``live`` points at
            files = {n: outputs.pop(n) for n in pem_files}
            there = any(f.kind != "absent" for f in files.values())
            pem = PemObserved(desired.pem_dir, ".live.0000000000000000.d" if there else "", files)
        links = dict(self.links)
        if self.trust_is_dir:
            links.setdefault("authorities", LinkDir("authorities"))
        return Observed(
            "/ssl", NOW_TS, inputs, list(self.findings), outputs, links, self.owner, dict(self.first_seen), pem
        )


def seed() -> Node:
    """The seed layout: ssl pair, the web pair falling back to it, one CA in authorities/."""
    return (
        Node()
        .source("ssl.key", key_pem(SSL), PRIVATE)
        .source("ssl.crt", pem(SSL))
        .without("ssl-web.key")
        .without("ssl-web.crt")
        .source("authorities/ca.crt", pem(CA))
    )


def run(node: Node, dry_run: bool = False, grace: float = 0.0, now: float = NOW_TS, memo=None) -> Decision:
    observed = node.observed()
    observed.at = now
    context = Context(HOST, dt.datetime.fromtimestamp(now, dt.UTC), dry_run, grace)
    return decide(observed, node.state(), context, memo=memo)


def written_file(name: str, data: bytes, mode: int) -> OutputFile:
    return OutputFile(name, f"/ssl/{name}", "file", stat=fake_stat(mode, len(data)), data=data,
                      digest=hashlib.sha256(data).digest())


def settled(node: Node) -> Node:
    """The node after a first reconcile wrote everything: each output holds what decide wants."""
    for step in run(node).steps:
        if isinstance(step, WriteStore):
            node.outputs[step.name] = written_file(step.name, encode(step), step.mode)
        elif isinstance(step, WriteFile):
            node.outputs[step.name] = written_file(step.name, step.data, step.mode)
        elif isinstance(step, SwapPemSet):
            for member, data, mode in step.files:
                name = f"{step.directory}/{member}"
                node.outputs[name] = written_file(name, data, mode)
        elif isinstance(step, MakeLink):
            there = node.links.setdefault(step.directory, LinkDir(step.directory))
            there.links[step.name] = step.target
    return node


def artifact(decision: Decision, name: str):
    return next(a for a in decision.artifacts if a.name == name)


def codes(decision: Decision) -> set[str]:
    return {f.code for f in decision.findings}


def steps(decision: Decision, kind: type) -> list:
    return [s for s in decision.steps if isinstance(s, kind)]


# --- the actions ------------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    node: Callable[[], Node]
    artifact: str  # the artifact the row is about
    action: str  # what its report says happened
    status: Status
    message: str  # a part of its message
    finding_codes: frozenset[str] = frozenset()  # must be among the findings
    step: type | None = None  # a step decide must choose for it (None: no step for it)
    dry_run: bool = False


def _corrupt(node: Node, name: str) -> Node:
    node.outputs[name] = OutputFile(
        name, f"/ssl/{name}", "file", stat=fake_stat(PRIVATE, 9), data=b"not a store", digest=b"x" * 32
    )
    return node


def _wrong_mode(node: Node, name: str, mode: int) -> Node:
    out = node.outputs[name]
    node.outputs[name] = dataclasses.replace(out, stat=fake_stat(mode, len(out.data or b"")))
    return node


def _wrong_owner(node: Node, name: str) -> Node:
    out = node.outputs[name]
    node.outputs[name] = dataclasses.replace(out, stat=fake_stat(PRIVATE, len(out.data or b""), uid=1234))
    node.owner = Ownership(uid=0)
    return node


def _other_ca_in_place() -> Node:
    """ssl.keystore right, then ssl.crt replaced by a certificate from a CA nobody trusts."""
    node = settled(seed())
    stranger = cert(HOST, OTHER_CA, ca=False)
    return node.source("ssl.key", key_pem(stranger), PRIVATE).source("ssl.crt", pem(stranger))


def _garbage_key_kept() -> Node:
    return settled(seed()).problem("ssl.key", FindingCode.GARBAGE, "holds no PEM or DER key")


ROWS = [
    Row("fresh node: every store written", seed, "ssl.keystore", "written", Status.OK, "rewritten: missing",
        step=WriteStore),
    Row("fresh node, dry run: would write", seed, "ssl.p12", "would-write", Status.OK, "would rewrite: missing",
        step=WriteStore, dry_run=True),
    Row("everything right: nothing to do", lambda: settled(seed()), "authorities.jks", "unchanged", Status.OK,
        "up to date"),
    Row("right content, wrong mode: fixed in place", lambda: _wrong_mode(settled(seed()), "ssl.keystore", 0o640),
        "ssl.keystore", "unchanged", Status.OK, "fixed mode 0640 -> 0600", step=FixAttributes),
    Row("right content, wrong mode, dry run", lambda: _wrong_mode(settled(seed()), "ssl.keystore", 0o640),
        "ssl.keystore", "unchanged", Status.OK, "would fix mode/owner", step=FixAttributes, dry_run=True),
    Row("right content, wrong owner (root)", lambda: _wrong_owner(settled(seed()), "ssl.p12"), "ssl.p12",
        "unchanged", Status.OK, "fixed owner", step=FixAttributes),
    Row("corrupt store: rewritten", lambda: _corrupt(settled(seed()), "ssl.keystore"), "ssl.keystore", "written",
        Status.OK, "cannot be opened with the store password", step=WriteStore),
    Row("output is a symlink: replaced by a file", lambda: _symlinked(settled(seed()), "ssl-web.p12"),
        "ssl-web.p12", "written", Status.OK, "is a symlink", step=WriteStore),
    Row("output is a directory: in the way", lambda: _in_the_way(seed(), "ssl.p12"), "ssl.p12", "failed",
        Status.FAILED, "holds a non-file", {FindingCode.NOT_A_FILE}),
    Row("bad key, last good store there: kept", _garbage_key_kept, "ssl.keystore", "kept-last-good",
        Status.DEGRADED, "kept the last good store", {FindingCode.GARBAGE}),
    Row("bad key, no store yet: failed", lambda: seed().problem("ssl.key", FindingCode.GARBAGE), "ssl.keystore",
        "failed", Status.FAILED, "cannot be built", {FindingCode.GARBAGE}),
    Row("host certificate from an untrusted CA: kept", _other_ca_in_place, "ssl.keystore", "kept-last-good",
        Status.DEGRADED, "kept the last good store", {FindingCode.UNTRUSTED}),
    Row("web pair absent: built from the ssl pair", seed, "ssl-web.keystore", "written", Status.OK,
        "from the ssl pair", step=WriteStore),
]


def _symlinked(node: Node, name: str) -> Node:
    node.outputs[name] = OutputFile(name, f"/ssl/{name}", "symlink", "is a symlink (outputs are never written "
                                    "through one)", stat=fake_stat(0o777))
    return node


def _in_the_way(node: Node, name: str) -> Node:
    node.outputs[name] = OutputFile(name, f"/ssl/{name}", "not-a-file", "is not a regular file", stat=fake_stat(0o755))
    return node


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_action_table(row: Row) -> None:
    decision = run(row.node(), dry_run=row.dry_run)
    got = artifact(decision, row.artifact)
    assert (got.action, got.status) == (row.action, row.status), got
    assert row.message in got.message, got.message
    assert row.finding_codes <= codes(decision), decision.findings
    mine = [s for s in decision.steps if getattr(s, "name", None) == row.artifact]
    if row.step is None:
        assert mine == [], mine
    else:
        assert [type(s) for s in mine] == [row.step], mine


def test_fix_step_names_the_inode_it_checked() -> None:
    node = _wrong_mode(settled(seed()), "ssl.keystore", 0o666)
    (fix,) = steps(run(node), FixAttributes)
    assert fix.observed is node.outputs["ssl.keystore"].stat and fix.mode == PRIVATE and fix.uid is None


def test_a_no_op_chooses_no_step_at_all() -> None:
    assert run(settled(seed())).steps == []


# --- hash links -------------------------------------------------------------------------------------------


def test_links_made_for_new_ca_removed_when_stale_and_a_file_in_the_way_left_alone() -> None:
    node = seed()
    node.links["authorities"] = LinkDir("authorities", {"deadbeef.0": "gone.crt"}, frozenset({"0badf00d.0"}))
    node.source("authorities/second.crt", pem(OTHER_CA))
    decision = run(node)
    made = {s.target for s in steps(decision, MakeLink)}
    assert made == {"ca.crt", "second.crt"}
    assert [(s.directory, s.name) for s in steps(decision, RemoveLink)] == [("authorities", "deadbeef.0")]
    occupied = run(_occupy(seed()))
    assert FindingCode.NOT_A_LINK in codes(occupied) and not steps(occupied, MakeLink)


def _occupy(node: Node) -> Node:
    wanted = {s.name for s in steps(run(seed()), MakeLink)}
    node.links["authorities"] = LinkDir("authorities", {}, frozenset(wanted))
    return node


def test_a_trust_dir_where_links_cannot_be_kept_is_a_finding_and_no_link_step() -> None:
    node = seed()
    node.links["authorities"] = LinkDir("authorities", problem="hash links not kept: is a symlink")
    decision = run(node)
    assert FindingCode.LINKS in codes(decision) and not steps(decision, MakeLink)
    assert artifact(decision, "authorities.jks").action == "written"  # the truststore itself is still right


# --- the grace window -------------------------------------------------------------------------------------


def test_a_young_transient_error_is_pending_and_says_when_to_look_again() -> None:
    node = _garbage_key_kept()
    node.problem("ssl.key", FindingCode.GARBAGE, mtime=NOW_TS - 1)
    decision = run(node, grace=5)
    assert artifact(decision, "ssl.keystore").status is Status.PENDING
    assert decision.pending_files == {"ssl.key"}
    assert decision.recheck_at == pytest.approx(NOW_TS - 1 + 5)


def test_past_the_window_the_same_error_is_degraded() -> None:
    node = _garbage_key_kept()
    node.problem("ssl.key", FindingCode.GARBAGE, mtime=NOW_TS - 6)
    decision = run(node, grace=5)
    assert artifact(decision, "ssl.keystore").status is Status.DEGRADED and decision.recheck_at is None


def test_a_future_mtime_counts_from_when_it_was_first_seen_never_later() -> None:
    node = _garbage_key_kept()
    node.problem("ssl.key", FindingCode.GARBAGE, mtime=NOW_TS + 86_400)  # touched a day ahead
    node.first_seen["ssl.key"] = NOW_TS - 1
    young = run(node, grace=5)
    assert artifact(young, "ssl.keystore").status is Status.PENDING
    assert young.recheck_at == pytest.approx(NOW_TS - 1 + 5)  # not a day from now
    node.first_seen["ssl.key"] = NOW_TS - 6  # the window has passed since it was first seen
    assert artifact(run(node, grace=5), "ssl.keystore").status is Status.DEGRADED


def test_a_trust_failure_is_never_pending() -> None:
    node = _other_ca_in_place()
    node.files["ssl.crt"] = dataclasses.replace(node.files["ssl.crt"], mtime=NOW_TS)
    decision = run(node, grace=5)
    assert artifact(decision, "ssl.keystore").status is Status.DEGRADED and not decision.pending_files


# --- ownership, desired state -------------------------------------------------------------------------------


def test_unknown_owner_is_reported_and_the_stores_are_still_kept_right() -> None:
    node = seed()
    node.findings.append(error("/etc/desired.json", "permissions.owner: no such user 'x'", FindingCode.UNKNOWN_OWNER))
    decision = run(node)
    assert FindingCode.UNKNOWN_OWNER in codes(decision)
    assert {s.uid for s in steps(decision, WriteStore)} == {None}  # new files take the ssl dir's owner


def test_a_desired_state_problem_passed_in_is_kept_among_the_findings() -> None:
    observed = seed().observed()
    problem = error("/etc/desired.json", "is invalid, keeping the last valid one", FindingCode.DESIRED_STATE)
    decision = decide(observed, seed().state(), Context(HOST, dt.datetime.fromtimestamp(NOW_TS, dt.UTC)), [problem])
    assert problem in decision.findings


# --- after execution: settle ------------------------------------------------------------------------------


@dataclass
class SettleRow:
    """A decision, one of its steps failing with ``reason``, and what settle must leave in the report."""

    name: str
    node: Callable[[], Node]
    step: type  # the kind of step that fails (the first of its kind in the decision)
    code: FindingCode  # the finding the failure becomes, about the step's file or link
    artifact: tuple[str, Status] | None = None  # the failed store's report (action, status) after settle
    reason: str = "No space left on device"


def _stale_link() -> Node:
    node = seed()
    node.links["authorities"] = LinkDir("authorities", {"deadbeef.0": "gone.crt"})
    return node


# One row at least per step kind (test_every_step_kind_has_a_settle_row holds the table to it).
SETTLE_ROWS = [
    SettleRow("a new store not written: failed, nothing to keep", seed, WriteStore, FindingCode.WRITE_FAILED,
              ("failed", Status.FAILED)),
    SettleRow("a rewrite that fails: the store there is kept", lambda: _corrupt(settled(seed()), "ssl.keystore"),
              WriteStore, FindingCode.WRITE_FAILED, ("kept-last-good", Status.DEGRADED)),
    SettleRow("mode not fixed: degraded, content as it was", lambda: _wrong_mode(settled(seed()), "ssl.keystore", 0o640),
              FixAttributes, FindingCode.ATTRIBUTES, ("unchanged", Status.DEGRADED), "Operation not permitted"),
    SettleRow("a hash link not made: not reported added", seed, MakeLink, FindingCode.LINK_FAILED,
              reason="Read-only file system"),
    SettleRow("a stale hash link not removed: not reported removed", _stale_link, RemoveLink, FindingCode.LINK_FAILED,
              reason="Permission denied"),
    SettleRow("a new PEM CA bundle not written: failed", seed, WriteFile, FindingCode.WRITE_FAILED,
              ("failed", Status.FAILED)),
    SettleRow("a new PEM set not swapped in: each of its files failed", seed, SwapPemSet, FindingCode.WRITE_FAILED,
              ("failed", Status.FAILED)),
]


@pytest.mark.parametrize("row", SETTLE_ROWS, ids=[r.name for r in SETTLE_ROWS])
def test_settle_table(row: SettleRow) -> None:
    decision = run(row.node())
    step = steps(decision, row.step)[0]
    report = settle(decision, [StepFailed(step, row.reason)], "/ssl", dt.datetime.now(dt.UTC), 0.01, False)
    if isinstance(step, SwapPemSet):
        where, names = step.directory, set(step.written)
    elif isinstance(step, WriteStore | FixAttributes | WriteFile):
        where, names = step.name, {step.name}
    else:
        where, names = f"{step.directory}/{step.name}", set()
    failed = [f for f in report.findings if f.code == row.code]
    assert [f.file for f in failed] == [where] and row.reason in failed[0].reason, report.findings
    assert failed[0].level is Level.ERROR
    if row.artifact is not None:
        for got in (a for a in report.artifacts if a.name in names):
            assert (got.action, got.status) == row.artifact and row.reason in got.message, got
    else:  # a link step: the report no longer claims the change
        (links,) = [r for r in report.links if r.directory == step.directory]
        assert step.name not in (links.added if isinstance(step, MakeLink) else links.removed)
    others = [a for a in report.artifacts if a.name not in names]
    assert others == [a for a in decision.artifacts if a.name not in names]  # only its own


def test_settle_with_no_failure_reports_the_decision_as_it_stands() -> None:
    node = _corrupt(_wrong_mode(settled(seed()), "ssl.keystore", 0o640), "ssl.p12")
    node.links["authorities"].links["deadbeef.0"] = "gone.crt"
    decision = run(node)
    assert {type(s) for s in decision.steps} == {WriteStore, FixAttributes, RemoveLink}
    report = settle(decision, [], "/ssl", dt.datetime.now(dt.UTC), 0.01, False)
    assert report.artifacts == decision.artifacts and report.findings == decision.findings
    assert report.links == decision.links and report.trust == decision.trust


def test_every_step_kind_has_a_settle_row() -> None:
    """A new kind of step must say what its failure leaves behind: the Step union and the table agree."""
    assert {r.step for r in SETTLE_ROWS} == set(typing.get_args(Step))


def test_hooks_due_follow_only_what_was_written() -> None:
    desired = DesiredState.model_validate({"hostname": HOST, "hooks": [
        {"name": "web", "after": ["ssl-web.keystore"], "command": ["true"]},
        {"name": "both", "after": ["ssl.keystore", "authorities.jks"], "command": ["true"]},
    ]})
    due = hooks_due(desired.hooks, {"authorities.jks"})
    assert [(h.label, changed) for h, changed in due] == [("both", ("authorities.jks",))]
    assert hooks_due(desired.hooks, set()) == []


def test_the_memo_spares_decoding_known_bytes_and_changes_no_decision() -> None:
    node = settled(seed())
    memo = ReconcileCache()
    first, second = run(node, memo=memo), run(node, memo=memo)
    assert memo.stores and first.steps == second.steps == []
    assert [a.message for a in first.artifacts] == [a.message for a in second.artifacts]


def _outcome(decision: Decision) -> tuple[object, ...]:
    return (
        [(a.name, a.action, a.status, a.message) for a in decision.artifacts],
        [(f.file, f.code, f.reason) for f in decision.findings],
        [type(s).__name__ + ":" + getattr(s, "name", "") for s in decision.steps],
        decision.trust,
    )


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_the_certificate_facts_memo_changes_no_decision(row: Row) -> None:
    """CertFacts without a process memo, with a fresh one, and with one an earlier run filled (its parsed
    certificates, derived facts and verdicts reused): the same decision, findings in the same order."""
    node = row.node()
    alone = _outcome(run(node, dry_run=row.dry_run))
    memo = ReconcileCache()
    assert _outcome(run(node, dry_run=row.dry_run, memo=memo)) == alone
    assert memo.certs  # the pairs' certificates, parsed once (the trust files' facts: file_facts, the stat index)
    assert _outcome(run(node, dry_run=row.dry_run, memo=memo)) == alone


# --- finding codes from the sources, as decide meets them ---------------------------------------------------


def _v(issued: Issued) -> tuple[bytes, bytes]:
    return key_pem(issued), pem(issued)


def _pair(key: bytes, crt: bytes, *, key_mode: int = PRIVATE) -> Node:
    return seed().source("ssl.key", key, key_mode).source("ssl.crt", crt)


def _trust(name: str, data: bytes) -> Node:
    return seed().source(f"authorities/{name}", data)


NEAR = dt.timedelta(days=10)
NOW = dt.datetime.fromtimestamp(NOW_TS, dt.UTC)
SOURCE_ROWS: list[tuple[str, Callable[[], Node], FindingCode, Level]] = [
    ("missing: one half of a pair", lambda: seed().without("ssl.crt"), FindingCode.MISSING, Level.ERROR),
    ("key-mismatch", lambda: _pair(key_pem(cert(HOST, CA, ca=False)), pem(SSL)), FindingCode.KEY_MISMATCH,
     Level.ERROR),
    ("expired", lambda: _pair(*_v(cert(HOST, CA, ca=False, not_before=NOW - dt.timedelta(days=400), days=30))),
     FindingCode.EXPIRED, Level.ERROR),
    ("not-yet-valid", lambda: _pair(*_v(cert(HOST, CA, ca=False, not_before=NOW + NEAR))),
     FindingCode.NOT_YET_VALID, Level.ERROR),
    ("expiring", lambda: _pair(*_v(cert(HOST, CA, ca=False, not_before=NOW - NEAR, days=15))),
     FindingCode.EXPIRING, Level.WARNING),
    ("hostname", lambda: _pair(*_v(cert("other.example.com", CA, ca=False))), FindingCode.HOSTNAME, Level.WARNING),
    ("untrusted", lambda: _pair(*_v(cert(HOST, OTHER_CA, ca=False))), FindingCode.UNTRUSTED, Level.ERROR),
    ("key-mode", lambda: _pair(*_v(SSL), key_mode=0o644), FindingCode.KEY_MODE, Level.WARNING),
    ("weak-rsa-key", lambda: _pair(*_v(cert(HOST, CA, ca=False, kind="rsa1024"))), FindingCode.WEAK_RSA_KEY,
     Level.ERROR),
    ("weak-ec-curve", lambda: _pair(*_v(cert(HOST, CA, ca=False, kind="secp256k1"))), FindingCode.WEAK_EC_CURVE,
     Level.ERROR),
    ("weak-dsa-key: a DSA CA", lambda: _trust("dsa.crt", pem(cert("DSA CA", kind="dsa1024"))),
     FindingCode.WEAK_DSA_KEY, Level.ERROR),
    ("weak-signature", lambda: _pair(*_v(_sha1_leaf())),
     FindingCode.WEAK_SIGNATURE, Level.ERROR),
    ("key-usage", lambda: _pair(*_v(cert(HOST, CA, ca=False, eku=[ExtendedKeyUsageOID.CODE_SIGNING]))),
     FindingCode.KEY_USAGE, Level.ERROR),
    ("key-type", lambda: _pair(_ed25519(), pem(SSL)), FindingCode.KEY_TYPE, Level.ERROR),
    ("extra-certificate", lambda: _pair(key_pem(SSL), pem(SSL) + pem(OTHER_CA)), FindingCode.EXTRA_CERTIFICATE,
     Level.WARNING),
    ("bad-chain", lambda: seed().source("ssl-web.key", key_pem(_stranger_web()))
     .source("ssl-web.crt", pem(_stranger_web()) + pem(_impostor_of_other_ca())), FindingCode.BAD_CHAIN, Level.ERROR),
    ("no-key", lambda: _pair(pem(SSL), pem(SSL)), FindingCode.NO_KEY, Level.ERROR),
    ("many-keys", lambda: _pair(key_pem(SSL) + key_pem(OTHER_CA), pem(SSL)), FindingCode.MANY_KEYS, Level.ERROR),
    ("encrypted-key", lambda: _pair(_encrypted(SSL), pem(SSL)), FindingCode.ENCRYPTED_KEY, Level.ERROR),
    ("garbage", lambda: _pair(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", pem(SSL)),
     FindingCode.GARBAGE, Level.ERROR),
    ("no-certificate", lambda: _pair(key_pem(SSL), key_pem(SSL)), FindingCode.NO_CERTIFICATE, Level.ERROR),
    ("not-a-ca", lambda: _trust("leafish.crt", pem(cert("Leafish CA", ca=None, ku=None, eku=None))),
     FindingCode.NOT_A_CA, Level.ERROR),
    ("partial-chain", lambda: _trust("issuing.crt", pem(cert("Issuing", OTHER_CA))), FindingCode.PARTIAL_CHAIN,
     Level.WARNING),
    ("duplicate-alias", lambda: _trust("CA.pem", pem(OTHER_CA)), FindingCode.DUPLICATE_ALIAS, Level.ERROR),
    ("duplicate-certificate", lambda: _trust("copy.crt", pem(CA)), FindingCode.DUPLICATE_CERTIFICATE,
     Level.WARNING),
    ("bad-name: an alias a JKS cannot hold", lambda: _trust("emoji-\U0001F600.crt", pem(OTHER_CA)),
     FindingCode.BAD_NAME, Level.ERROR),
    ("no-hash-link: DER", lambda: _trust("der.der", OTHER_CA.cert_der()), FindingCode.NO_HASH_LINK, Level.WARNING),
    ("alias-suffix", lambda: _trust("two.crt", pem(OTHER_CA) + pem(cert("Third CA")))
     .source("authorities/two-2.crt", pem(cert("Fourth CA"))), FindingCode.ALIAS_SUFFIX, Level.WARNING),
    ("unverified web pair (verify=if-available)", lambda: seed().source("ssl-web.key", key_pem(_stranger_web()))
     .source("ssl-web.crt", pem(_stranger_web())), FindingCode.UNVERIFIED, Level.WARNING),
    ("no-store", lambda: _desired(seed(), {"pairs": [{"name": "ssl", "key": "ssl.key", "cert": "ssl.crt"}]}),
     FindingCode.NO_STORE, Level.WARNING),
    ("password", lambda: _no_password(seed()), FindingCode.PASSWORD, Level.ERROR),
]
# Problems observe found reading a source: decide carries them and keeps the last good store.
OBSERVED_CODES = [
    FindingCode.EMPTY, FindingCode.TOO_LARGE, FindingCode.UNREADABLE, FindingCode.SYMLINK, FindingCode.SYMLINK_ESCAPE,
    FindingCode.DANGLING_SYMLINK, FindingCode.NOT_A_FILE, FindingCode.BAD_NAME, FindingCode.INVALID,
]

_STRANGER_WEB: list[Issued] = []


def _stranger_web() -> Issued:
    if not _STRANGER_WEB:
        _STRANGER_WEB.append(cert(HOST, OTHER_CA, ca=False))
    return _STRANGER_WEB[0]


def _impostor_of_other_ca() -> Issued:
    """A CA certificate with the Other CA's name and another key: it did not sign the stranger's leaf."""
    return cert("Other CA")


def _ed25519() -> bytes:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _encrypted(issued: Issued) -> bytes:
    return issued.key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


def _desired(node: Node, extra: dict[str, object]) -> Node:
    node.desired = {**node.desired, **extra}
    return node


class _NoPassword(Node):
    def observed(self) -> Observed:
        observed = super().observed()
        observed.inputs.passwords.pop("ssl.keystore")
        observed.inputs.password_problems["ssl.keystore"] = error(
            "ssl.keystore", "no store password: credential 'store' not found", FindingCode.PASSWORD
        )
        return observed


def _no_password(node: Node) -> Node:
    return _NoPassword(**{f.name: getattr(node, f.name) for f in dataclasses.fields(node)})


@pytest.mark.parametrize(("label", "make", "code", "level"), SOURCE_ROWS, ids=[r[0] for r in SOURCE_ROWS])
def test_finding_code_table(label: str, make: Callable[[], Node], code: FindingCode, level: Level) -> None:
    decision = run(make())
    found = [f for f in decision.findings if f.code == code]
    assert found, f"{label}: {decision.findings}"
    assert found[0].level is level, found
    assert "PRIVATE KEY" not in found[0].reason and "secret" not in found[0].reason  # never a secret
    if level is Level.ERROR and not found[0].file.startswith("authorities/"):  # a bad trust file is left out
        built_from = [a for a in decision.artifacts if found[0].file in (*a.sources, a.name)]
        assert any(a.action in ("kept-last-good", "failed") for a in built_from), built_from


@pytest.mark.parametrize("code", OBSERVED_CODES, ids=[c.value for c in OBSERVED_CODES])
def test_a_problem_observe_found_blocks_the_artifacts_built_from_that_source(code: FindingCode) -> None:
    decision = run(settled(seed()).problem("ssl.crt", code, "cannot be used"))
    assert code in codes(decision)
    assert artifact(decision, "ssl.keystore").action == "kept-last-good"
    assert artifact(decision, "ssl-web.keystore").action == "kept-last-good"  # it falls back to the ssl pair


# Codes that arise outside decide, with the tests that cover them where they arise.
ELSEWHERE = {
    FindingCode.LOCKED: "test_writer_lock.py (another writer holds the ssl dir)",
    FindingCode.INTERNAL: "test_hostile_input.py / test_reliability.py (a reconcile that breaks off)",
    FindingCode.ACME: "test_acme.py and test_acme_decide.py",
    FindingCode.ACME_ACCOUNT_KEY: "test_acme.py",
    FindingCode.WARNING: "the default code of a warning with no better name (none is raised today)",
    FindingCode.HOOK_PROGRAM: "test_messages.py (observe checks each hook's program, config/hook_programs.py)",
    FindingCode.HOOK_RECORD: "test_oneshot_hooks.py (the daemon refuses a one-shot's hook record it cannot trust)",
}


# What the tests of this file outside the three tables prove, each named by the test that asserts it.
COVERED_BY_TEST: dict[str, set[str]] = {
    "test_links_made_for_new_ca_removed_when_stale_and_a_file_in_the_way_left_alone": {
        "MakeLink", "RemoveLink", FindingCode.NOT_A_LINK},
    "test_a_trust_dir_where_links_cannot_be_kept_is_a_finding_and_no_link_step": {FindingCode.LINKS},
    "test_unknown_owner_is_reported_and_the_stores_are_still_kept_right": {FindingCode.UNKNOWN_OWNER},
    "test_a_desired_state_problem_passed_in_is_kept_among_the_findings": {FindingCode.DESIRED_STATE},
}


def test_every_action_and_every_finding_code_is_in_a_table() -> None:
    """The table's promise, from the rows themselves (each row is a test that fails if it does not hold) and
    the tests named above: it needs no other test to have run first, in this process or at all."""
    actions = {r.action for r in ROWS} | {r.step.__name__ for r in ROWS if r.step is not None}
    covered = {str(c) for r in ROWS for c in r.finding_codes}
    covered |= {str(r[2]) for r in SOURCE_ROWS} | {str(c) for c in OBSERVED_CODES}
    covered |= {str(r.code) for r in SETTLE_ROWS}
    actions |= {r.artifact[0] for r in SETTLE_ROWS if r.artifact is not None}
    for test_name, proved in COVERED_BY_TEST.items():
        assert callable(globals().get(test_name)), f"{test_name} is named as covering {proved} but is gone"
        actions |= {p for p in proved if not isinstance(p, FindingCode)}
        covered |= {str(p) for p in proved if isinstance(p, FindingCode)}
    assert {"written", "would-write", "unchanged", "kept-last-good", "failed"} <= actions
    assert {"WriteStore", "FixAttributes", "MakeLink", "RemoveLink"} <= actions
    missing = {str(c) for c in FindingCode} - covered - {str(c) for c in ELSEWHERE}
    assert not missing, f"finding codes no table row covers: {sorted(missing)}"
