"""The collect report and the pre-flight against hostile or odd nodes (issue 25 follow-up).

The daemon answering /health runs as the service user, so a compromised node controls its document: a wrong
type anywhere must become that node's own ``invalid`` row (never a crash for the whole fleet, never ``ok``),
the strings it sends must not forge or stretch lines of the report, and the verdict is the CAs the node lists
(an extra CA beside the expected ``fingerprint`` is drift). A node without a trust set is ``unknown`` for
that reason, not for "no CA in the staging area". ``pki node-cas`` says "unknown" (``complete`` false) when
it could not look as the reconcile would, and the pre-flight stops on it. Table tests of the filters, and
node-cas driven through the CLI on real directory trees.
"""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from ansiblekit import BIN, PLAYBOOKS, ansible_env, link_collection
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sslreconciler.reconcile.trustset import trust_set

from conftest import REPO, run_cli
from pkitools import make_ca


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"hostile_{name}", REPO / "ansible" / "plugins" / "filter" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


F, T = _load("fleet"), _load("takeover")
CA, OTHER = make_ca("ca.node1.example.com"), make_ca("ca.attacker.example.org")
EXPECTED = F.fleet_expected({"ca": CA.cert_pem().decode()}, None)


def sha(issued: Any) -> str:
    return hashlib.sha256(issued.cert_der()).hexdigest()


def good(**changes: Any) -> dict[str, Any]:
    doc = {
        "status": "ok",
        "trust": trust_set({"ca": CA.cert_der()}),
        "artifacts": {"ssl.keystore": {"certificate": {"not_after": "2029-01-02T00:00:00Z"}}},
        "findings": [],
    }
    return {**doc, **changes}


def trust(**changes: Any) -> dict[str, Any]:
    return good(trust={**trust_set({"ca": CA.cert_der()}), **changes})


CA_ENTRY = {"alias": "ca", "subject": "CN=ca.node1.example.com", "fingerprint": sha(CA)}
BAD = [
    ("a top-level list", [1, 2]),
    ("a top-level string", "abc"),
    ("trust a list", good(trust=[1])),
    ("trust a string", good(trust="nope")),
    ("fingerprint an int", trust(fingerprint=5)),
    ("cas strings", trust(cas=["a", "b"])),
    ("cas a dict", trust(cas={"a": 1})),
    ("a cas entry without a fingerprint", trust(cas=[{"alias": "ca", "subject": "x"}])),
    ("artifacts a list", good(artifacts=[1])),
    ("an artifact a string", good(artifacts={"ssl.keystore": "x"})),
    ("not_after an int", good(artifacts={"ssl.keystore": {"certificate": {"not_after": 5}}})),
    ("authorities an int", trust(authorities=3)),
    ("status a dict", good(status={"a": 1})),
    ("findings a string", good(findings="abc")),
    # The cas list is the expected set, but authorities names one more CA than it lists.
    ("authorities disagreeing with cas", trust(authorities=["ca", "hidden"])),
    # cas lists the expected set, fingerprint is some other set's: the document contradicts itself.
    ("fingerprint disagreeing with cas", trust(fingerprint="0" * 64)),
]


@pytest.mark.parametrize("doc", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_a_document_of_the_wrong_shape_is_that_nodes_own_invalid_row(doc: Any) -> None:
    rows = F.fleet_report({"a": good(), "bad": doc}, EXPECTED, {})
    assert [(r["node"], r["verdict"]) for r in rows] == [("a", "ok"), ("bad", "invalid")]
    assert rows[1]["reason"] and not rows[1]["drift"]
    json.dumps(rows)
    table = F.fleet_table(rows).splitlines()
    assert len(table) == 3 and table[2].split()[0] == "bad" and table[2].split()[-1] == "invalid"
    summary = F.fleet_summary(rows)
    assert summary.startswith("2 nodes: 1 ok, 0 drifted, 0 unreachable, 1 invalid (bad: "), summary
    assert all(isinstance(line, str) for line in F.health_findings(doc))


def test_an_extra_ca_beside_the_expected_fingerprint_is_drift() -> None:
    """The fingerprint of the expected set is computable from public CAs: a node that lists one more CA and
    sends the expected fingerprint is judged by what it lists."""
    sneaky = trust_set({"ca": CA.cert_der(), "evil": OTHER.cert_der()})
    sneaky["fingerprint"] = trust_set({"ca": CA.cert_der()})["fingerprint"]
    (row,) = F.fleet_report({"n": good(trust=sneaky)}, EXPECTED, {})
    assert row["verdict"] == "DRIFT"
    assert [(c["subject"], c["fingerprint"]) for c in row["extra"]] == [("CN=ca.attacker.example.org", sha(OTHER))]
    assert F.fleet_summary([row]) == "1 nodes: 0 ok, 1 drifted, 0 unreachable"


def test_a_node_cannot_forge_or_stretch_lines_of_the_report() -> None:
    forged_subject = "CN=x\nnode9: extra CN=lie (SHA-256 " + "0" * 64 + ")\x1b[2J"
    evil = trust_set({"ca": CA.cert_der(), "evil": OTHER.cert_der()})
    evil["cas"] = [c if c["alias"] == "ca" else {**c, "subject": forged_subject} for c in evil["cas"]]
    docs = {
        "a": good(status="ok\nnode9  ok  ffffffffffff  ca  2099-01-01  2099-01-01  ok"),
        "b": good(status="x" * 200_000),
        "c": good(trust=evil, status="ok\u202e"),
    }
    rows = F.fleet_report(docs, EXPECTED, {})
    assert [r["verdict"] for r in rows] == ["ok", "ok", "DRIFT"]
    table = F.fleet_table(rows)
    lines = table.splitlines()
    assert len(lines) == 5, table  # the head, three rows, one extra CA
    assert not any(line.startswith("node9") for line in lines)
    assert all(len(line) < 400 for line in lines)
    assert not any(ch in table for ch in "\x1b\u202e\r")
    assert len(json.dumps(rows)) < 5_000  # the 200 KB status is not in the JSON rows either
    assert F.health_findings(good(findings=[{"code": "x\ny", "reason": "r" * 10_000}, "abc"])) == [
        f"error xy -: {'r' * (400 - 1)}\u2026",
        "error ? -: a finding that is not an object: 'abc'",
    ]


def test_a_node_listing_thousands_of_cas_stretches_neither_the_row_nor_the_table() -> None:
    many = [{"alias": f"a{i:05}", "subject": f"CN=n{i}", "fingerprint": f"{i:064x}"} for i in range(5000)]
    doc = trust(cas=many, authorities=[c["alias"] for c in many])
    rows = F.fleet_report({"a": doc, "b": good()}, EXPECTED, {})
    assert [r["verdict"] for r in rows] == ["DRIFT", "ok"] and len(rows[0]["extra"]) == 5000
    lines = F.fleet_table(rows).splitlines()
    assert len(lines) == 3 + 32 + 1 + 1, lines[-3:]  # head, 2 rows, 32 extra CAs, "N more", the missing one
    assert "a: extra 4968 more CAs" in lines and all(len(line) < 400 for line in lines)


def test_a_node_without_a_trust_set_says_so() -> None:
    rows = F.fleet_report({"a": {"status": "failed", "findings": []}, "b": good()}, EXPECTED, {})
    assert [(r["verdict"], r["reason"]) for r in rows] == [("unknown", "no trust set reported"), ("ok", "")]
    summary = F.fleet_summary(rows)
    assert summary == "2 nodes: 1 ok, 0 drifted, 0 unreachable, 1 not judged (a: no trust set reported)"
    assert "staging area" not in summary
    unstaged = F.fleet_report({"a": good(), "b": good()}, [], {})
    assert F.fleet_summary(unstaged).endswith(", 2 not judged (no CA in the staging area)")


def test_the_expected_set_counts_a_trust_only_ca_the_record_names() -> None:
    """The collect role now reads the .crt of every CA ca-rotation.json names, keyless or not."""
    staged = {"new": CA.cert_pem().decode(), "old": OTHER.cert_pem().decode()}
    expected = F.fleet_expected(staged, {"current": "new", "previous": "old"})
    assert [e["fingerprint"] for e in expected] == [sha(CA), sha(OTHER)]
    both = trust_set({"new": CA.cert_der(), "old": OTHER.cert_der()})
    assert F.fleet_report({"n": good(trust=both)}, expected, {})[0]["verdict"] == "ok"


# The pre-flight: an incomplete node-cas answer stops it, naming the node and the reason.


def test_the_preflight_stops_on_an_incomplete_answer() -> None:
    node = {"host": "n2.example.com", "complete": False, "incomplete": ["authorities/ holds 600 entries"], "cas": []}
    problems = T.takeover_problems(node, {"cas": []})
    assert problems == [{"node": "n2.example.com", "unknown": ["authorities/ holds 600 entries"]}]
    message = T.takeover_message(problems, "/var/lib/sslreconciler-pki")
    assert "n2.example.com: authorities/ holds 600 entries" in message and "nothing was written" in message
    assert T.takeover_problems({"host": "n1", "cas": []}, {"cas": []}) == []  # an older node-cas: as before
    assert T.takeover_problems({"host": "n1", "complete": True, "incomplete": [], "cas": []}, {"cas": []}) == []


def _pki(*args: str | Path) -> str:
    result = run_cli("pki", *args)
    assert result.rc == 0, result.err
    return result.out


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A node running under a CA set up by hand (no bundle record in the state dir node-cas is asked with):
    it depends on its ssl.crt's issuer, which a file in authorities/ holds."""
    root = tmp_path_factory.mktemp("node")
    staging, ssl, desired = root / "S", root / "host" / "ssl", root / "host" / "desired-state.json"
    ssl.mkdir(parents=True)
    desired.write_text(json.dumps({"hostname": "sec1.example.com"}))
    _pki("init-ca", "--staging", staging, "--name", "ca.hand.example.com")
    _pki("issue", "--staging", staging, "sec1.example.com")
    _pki("bundle", "--staging", staging, "sec1.example.com", "-o", root / "b.tgz")
    result = run_cli("pki", "install-bundle", "--ssl-dir", ssl, "--desired-state", desired,
                     "--state-dir", root / "hand-state", root / "b.tgz")
    assert result.rc == 0, result.err
    return {"root": root, "ssl": ssl, "desired": desired}


def _node_cas(node: dict[str, Path], ssl: Path, text: bool = False) -> Any:
    out = _pki("node-cas", *([] if text else ["--json"]), "--ssl-dir", ssl, "--desired-state", node["desired"],
               "--state-dir", node["root"] / "root-state")
    return out if text else json.loads(out)


@pytest.mark.skipif(os.geteuid() != 0, reason="root reads the service user's ssl dir")
def test_node_cas_says_unknown_when_it_cannot_look_as_the_reconcile_would(node: dict[str, Path]) -> None:
    root, ssl = node["root"], node["ssl"]
    answer = _node_cas(node, ssl)
    assert answer["complete"] is True and [c["why"] for c in answer["cas"]] == [["issuer of ssl.crt"]]
    assert _node_cas(node, root / "no-such-dir")["complete"] is True  # a fresh node: no ssl dir yet

    link = root / "ssl-link"  # the ssl dir reached through a link the service user owns
    link.symlink_to(ssl)
    os.lchown(link, 65534, 65534)
    answer = _node_cas(node, link)
    assert answer["complete"] is False and str(link) in answer["incomplete"][0], answer
    text = _node_cas(node, link, text=True)
    assert "unknown:" in text and "fresh node" not in text

    authorities = ssl / "authorities"
    crowd = ssl / "crowd"
    crowd.mkdir()
    for i in range(520):  # entries sorting before the CA's file: the cap would drop it silently
        (crowd / f"0000-{i:04}.txt").write_text("x")
    for existing in authorities.iterdir():
        os.link(existing, crowd / existing.name, follow_symlinks=False)
    authorities.rename(ssl / "authorities.real")
    crowd.rename(authorities)
    try:
        answer = _node_cas(node, ssl)
        assert answer["complete"] is False and "more than the 512" in answer["incomplete"][0], answer
    finally:
        authorities.rename(crowd)
        (ssl / "authorities.real").rename(authorities)

    real = ssl / "authorities.real"
    authorities.rename(real)
    authorities.symlink_to("authorities.real")  # authorities/ a link: the reconcile does not follow it
    try:
        answer = _node_cas(node, ssl)
        assert answer["complete"] is False and "authorities/ cannot be opened" in answer["incomplete"][0], answer
    finally:
        authorities.unlink()
        real.rename(authorities)
    assert _node_cas(node, ssl)["complete"] is True


# One real collect.yml run: a staging area that took a running cluster's CA over trust-only, three fake
# /health servers on Unix sockets (a correctly migrated node, a hostile one, a degraded one without trust).


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _UnixHTTP(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self) -> Any:
        conn, _ = self.socket.accept()
        return conn, ("local", 0)  # http.server logs a client address; a Unix socket has none


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the collection's plays run as root")
def test_collect_judges_a_trust_only_takeover_and_survives_hostile_nodes(tmp_path: Path) -> None:
    env = ansible_env(tmp_path)
    link_collection(tmp_path)
    old_area, staging = tmp_path / "old", tmp_path / "staging"
    _pki("init-ca", "--staging", old_area, "--name", "ca.old.example.com")
    _pki("init-ca", "--staging", staging, "--name", "ca.new.example.com")
    _pki("import-ca", "--staging", staging, "--cert", old_area / "ca.old.example.com.crt")  # trust-only
    assert not (staging / "ca.old.example.com.key").exists()
    ders = {n: x509.load_pem_x509_certificate((staging / f"{n}.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER) for n in ("ca.new.example.com", "ca.old.example.com")}
    docs = {
        "n1": {"status": "ok", "trust": trust_set(ders), "artifacts": {}},  # migrated: trusts both
        "n2": {"status": "ok\nn9  ok  ffffffffffff  forged", "trust": ["not", "an", "object"]},
        "n3": {"status": "degraded", "findings": []},  # its ssl dir cannot be opened: no trust set
    }
    sockets = Path(tempfile.mkdtemp(prefix="fhd", dir="/tmp"))
    servers = []
    try:
        for name, doc in docs.items():
            server = _UnixHTTP(str(sockets / f"{name}.sock"), _Health)
            server.body = json.dumps(doc).encode()  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
        inventory = tmp_path / "inventory.json"
        inventory.write_text(json.dumps({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "sslreconciler_staging": str(staging), "sslreconciler_master_host": "n1",
                     "sslreconciler_report_file": str(tmp_path / "report.txt"),
                     "sslreconciler_report_json": str(tmp_path / "report.json")},
            "children": {"sslreconciler_master": {"hosts": {"n1": {}}}, "sslreconciler_nodes": {
                "hosts": {n: {"sslreconciler_socket": str(sockets / f"{n}.sock")} for n in docs}}},
        }}))
        proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOKS / "collect.yml")],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(sockets, ignore_errors=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {r["node"]: r for r in json.loads((tmp_path / "report.json").read_text())}
    assert {n: (r["verdict"], r["reason"]) for n, r in rows.items()} == {
        "n1": ("ok", ""),
        "n2": ("invalid", "trust is not an object"),
        "n3": ("unknown", "no trust set reported"),
    }
    report = (tmp_path / "report.txt").read_text().splitlines()
    assert len(report) == 5 and not any(line.startswith("n9") for line in report), report
    assert report[-1] == ("3 nodes: 1 ok, 0 drifted, 0 unreachable, 1 invalid (n2: trust is not an object), "
                          "1 not judged (n3: no trust set reported)")
