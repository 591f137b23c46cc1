"""The takeover rules without Ansible: the pre-flight's comparison (a table), the node's refusal of a bundle
that drops the CA it depends on, and the read-only queries the pre-flight asks (`pki node-cas`, `pki cas`),
driven through the CLI as root would on a node's directory tree."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, openssl, run_cli


def _filters() -> Any:
    spec = importlib.util.spec_from_file_location("takeover_filters", REPO / "ansible" / "plugins" / "filter" / "takeover.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _node(host: str, *fps: str) -> dict[str, Any]:
    return {"host": host, "cas": [{"subject": f"CN={fp}", "fingerprint": fp, "why": ["bundle record"]} for fp in fps]}


def _staging(*fps: str) -> dict[str, Any]:
    return {"exists": bool(fps), "cas": [{"name": fp, "fingerprint": fp, "held": True} for fp in fps]}


@pytest.mark.parametrize(
    ("node", "staging", "missing"),
    [
        (_node("fresh"), _staging(), []),  # a fresh node, an empty staging area: a fresh rollout
        (_node("fresh"), _staging("aa"), []),
        (_node("n1", "aa"), _staging("aa"), []),  # the staging area that made the cluster
        (_node("n1", "aa"), _staging(), ["aa"]),  # the outage: an empty staging area
        (_node("n1", "aa"), _staging("bb"), ["aa"]),  # another cluster's staging area
        (_node("n1", "aa", "bb"), _staging("bb"), ["aa"]),  # mid-rotation node, staging that lost the old CA
        (_node("n1", "AA"), _staging("aa"), []),  # fingerprints compared without regard to case
        (_node("n1", "aa"), {"cas": [{"fingerprint": "aa", "held": False, "role": "retired"}]}, []),  # retired here
    ],
)
def test_preflight_names_every_ca_a_node_depends_on_that_the_staging_area_lacks(
        node: dict[str, Any], staging: dict[str, Any], missing: list[str]) -> None:
    problems = _filters().takeover_problems(node, staging)
    assert [p["fingerprint"] for p in problems] == missing
    assert all(p["node"] == node["host"] for p in problems)


def test_preflight_message_names_node_ca_and_the_two_ways_on() -> None:
    f = _filters()
    problems = f.takeover_problems(_node("sec1.example.com", "ab" * 32), _staging())
    message = f.takeover_message(problems, "/var/lib/sslreconciler-pki")
    for part in ("sec1.example.com", f"CN={'ab' * 32}", f"SHA-256 {'ab' * 32}", "/var/lib/sslreconciler-pki",
                 "sslreconciler_staging", "takeover.yml", "nothing was written"):
        assert part in message
    assert message.endswith(".")


def _pki(*args: str | Path) -> str:
    result = run_cli("pki", *args)
    assert result.rc == 0, result.err
    return result.out


def _fingerprint(pem: Path) -> str:
    out = openssl("x509", "-in", pem, "-noout", "-fingerprint", "-sha256").stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def _tree(*dirs: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else "-"
            for d in dirs for p in sorted(d.rglob("*"))}


class Node:
    def __init__(self, root: Path, host: str) -> None:
        self.root, self.host = root, host
        self.ssl = root / host / "ssl"
        self.ssl.mkdir(parents=True)
        self.desired = root / host / "desired-state.json"
        self.desired.write_text(json.dumps({"hostname": host}))

    def install(self, bundle: Path, state: str, *options: str) -> Any:
        return run_cli("pki", "install-bundle", "--ssl-dir", self.ssl, "--desired-state", self.desired,
                       "--state-dir", self.root / self.host / state, *options, bundle)

    def node_cas(self, state: str) -> dict[str, Any]:
        return json.loads(_pki("node-cas", "--json", "--ssl-dir", self.ssl, "--desired-state", self.desired,
                               "--state-dir", self.root / self.host / state))


def _staged(root: Path, name: str, ca: str, host: str) -> Path:
    staging = root / name
    _pki("init-ca", "--staging", staging, "--name", ca)
    _pki("issue", "--staging", staging, host)
    bundle = root / f"{name}-{host}.tgz"
    _pki("bundle", "--staging", staging, host, "-o", bundle)
    return bundle


def test_install_refuses_a_bundle_that_drops_the_ca_the_running_host_certificate_needs(tmp_path: Path) -> None:
    """A node the collection once installed (root's record in the collection's state dir names CA0) was
    later moved by hand to CA1 with another state dir, as its cluster was. A bundle from the old staging area,
    signed by CA0 (which the collection's record knows), would put a CA0 host certificate on it while the
    cluster runs on CA1. Main accepts it: it asks only the record it is given who signed. Refused now, naming
    both CAs and --takeover, nothing written; accepted with --takeover."""
    node = Node(tmp_path, "sec1.example.com")
    first = _staged(tmp_path, "S0", "ca0.example.com", node.host)
    assert node.install(first, "root-state").rc == 0
    hand = _staged(tmp_path, "S1", "ca1.example.com", node.host)
    assert node.install(hand, "hand-state", "--takeover").rc == 0
    _pki("issue", "--staging", tmp_path / "S0", node.host, "--renew")  # a newer certificate from the old CA
    stale = tmp_path / "stale.tgz"
    _pki("bundle", "--staging", tmp_path / "S0", node.host, "-o", stale)
    before = _tree(node.ssl, tmp_path / node.host / "root-state")

    refused = node.install(stale, "root-state")
    assert refused.rc != 0
    assert _tree(node.ssl, tmp_path / node.host / "root-state") == before
    ca1 = _fingerprint(tmp_path / "S1" / "ca1.example.com.crt")
    ca0 = _fingerprint(tmp_path / "S0" / "ca0.example.com.crt")
    for part in ("CN=ca1.example.com", ca1, "CN=ca0.example.com", ca0, "--takeover", "nothing installed"):
        assert part in refused.err, refused.err

    assert node.install(stale, "root-state", "--takeover").rc == 0


def test_node_cas_shows_a_cluster_set_up_by_hand_with_another_state_dir(tmp_path: Path) -> None:
    node = Node(tmp_path, "master.example.com")
    bundle = _staged(tmp_path, "S1", "ca.master.example.com", node.host)
    assert node.node_cas("root-state")["cas"] == []  # a fresh node depends on nothing
    assert node.install(bundle, "hand-state").rc == 0
    fp = _fingerprint(tmp_path / "S1" / "ca.master.example.com.crt")
    by_hand = node.node_cas("root-state")  # the collection's state dir: no record there
    assert [(c["subject"], c["fingerprint"], c["why"]) for c in by_hand["cas"]] == [
        ("CN=ca.master.example.com", fp, ["issuer of ssl.crt"])]
    assert by_hand["cas"][0]["file"] == "authorities/ca.master.example.com.crt"
    both = node.node_cas("hand-state")
    assert both["cas"][0]["why"] == ["bundle record", "issuer of ssl.crt"]
    assert not (tmp_path / node.host / "root-state").exists()  # a query writes nothing


def test_cas_of_a_missing_staging_area_is_empty_and_makes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    assert json.loads(_pki("cas", "--json", "--staging", missing)) == {"staging": str(missing), "exists": False, "cas": []}
    assert not missing.exists()
    _staged(tmp_path, "S1", "ca.one.example.com", "one.example.com")
    cas = json.loads(_pki("cas", "--json", "--staging", tmp_path / "S1"))["cas"]
    assert [(c["name"], c["key"], c["held"], c["role"]) for c in cas] == [("ca.one.example.com", True, True, "current")]


def test_import_ca_with_its_key_refuses_a_staging_area_with_another_ca(tmp_path: Path) -> None:
    _staged(tmp_path, "S1", "ca.one.example.com", "one.example.com")
    _pki("init-ca", "--staging", tmp_path / "S2", "--name", "ca.two.example.com")
    crt, key = tmp_path / "S1" / "ca.one.example.com.crt", tmp_path / "S1" / "ca.one.example.com.key"
    refused = run_cli("pki", "import-ca", "--staging", tmp_path / "S2", "--cert", crt, "--key", key)
    assert refused.rc != 0 and "ca.two.example.com" in refused.err
    wrong = run_cli("pki", "import-ca", "--staging", tmp_path / "S3", "--cert", crt,
                    "--key", tmp_path / "S2" / "ca.two.example.com.key")
    assert wrong.rc != 0 and "does not match" in wrong.err
    assert "imported with its key" in _pki("import-ca", "--staging", tmp_path / "S4", "--cert", crt, "--key", key)
    assert (tmp_path / "S4" / "ca.one.example.com.key").stat().st_mode & 0o777 == 0o600
    assert "nothing done" in _pki("import-ca", "--staging", tmp_path / "S4", "--cert", crt, "--key", key)


@pytest.mark.parametrize("command", ["init-ca", "rotate-ca", "retire-ca", "issue", "list", "bundle", "renew", "cas",
                                     "import-ca"])
def test_every_staging_command_says_the_one_default_staging_path(command: str) -> None:
    result = run_cli("pki", command, "--help")
    assert "--staging DIR" in result.out and "(default /var/lib/sslreconciler-pki)" in " ".join(result.out.split())
