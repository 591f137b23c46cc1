"""CA rotation on a three-node cluster: after every step every node completes mutual TLS with every other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundlekit import HOSTS, copy_cluster, ok, template_cluster
from javakit import assert_every_pair_talks

from conftest import keytool_list, openssl, run_cli

OLD, NEW = "ca.master.example.com", "ca.new.example.com"


@pytest.fixture(scope="module")
def built_cluster(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One cluster per module, never used directly: each test gets its own copy of it."""
    return template_cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture
def cluster(built_cluster: dict, tmp_path: Path) -> dict:
    return copy_cluster(built_cluster, tmp_path)


def _install(cluster: dict, host: str) -> str:
    staging, node = cluster["staging"], cluster["nodes"][host]
    bundle = cluster["tmp"] / f"{host}.tgz"
    ok("pki", "bundle", "--staging", staging, host, "-o", bundle)
    return ok("pki", "install-bundle", bundle, "--ssl-dir", node / "ssl", "--desired-state", node / "desired.json")


def _all_pairs_talk(cluster: dict, java_classes: Path, step: str) -> None:
    nodes = cluster["nodes"]
    for a in HOSTS:  # openssl, knowing nothing of this project, verifies every peer's certificate on every node
        for b in HOSTS:
            result = openssl("verify", "-CApath", nodes[a] / "ssl" / "authorities", nodes[b] / "ssl" / "ssl.crt",
                             check=False)
            assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), (step, a, b, result.stderr)
    assert_every_pair_talks(java_classes, {host: nodes[host] / "ssl" for host in HOSTS}, step)


def _authorities(cluster: dict, host: str) -> set[str]:
    return {p.name for p in (cluster["nodes"][host] / "ssl" / "authorities").glob("*.crt")}


def _listing(cluster: dict) -> dict[str, dict]:
    return {r["host"]: r for r in json.loads(ok("pki", "list", "--staging", cluster["staging"], "--json"))}


@pytest.mark.slow
def test_rotation_keeps_every_handshake_working(cluster, java_classes: Path) -> None:
    staging = cluster["staging"]
    admin_ca = cluster["nodes"]["sec2.example.com"] / "ssl" / "authorities" / "admin-extra.crt"
    admin_ca.write_bytes((staging / f"{OLD}.crt").read_bytes())  # an admin's own file: never touched
    _all_pairs_talk(cluster, java_classes, "start")

    started = ok("pki", "rotate-ca", "--staging", staging, "--name", NEW)
    assert "stays trusted" in started and "retire-ca" in started
    assert {r["ca"] for r in _listing(cluster).values()} == {OLD}
    assert all(r["reissue"] for r in _listing(cluster).values())
    assert "left to re-issue under the current CA (3)" in ok("pki", "list", "--staging", staging)
    early = run_cli("pki", "retire-ca", "--staging", staging, OLD)
    assert early.rc == 1 and "still signed by" in early.err and "sec1.example.com" in early.err
    busy = run_cli("pki", "rotate-ca", "--staging", staging)
    assert busy.rc == 1 and "under way" in busy.err

    # step 1: every node gets both CAs; certificates unchanged
    for host in HOSTS:
        _install(cluster, host)
        assert {f"{OLD}.crt", f"{NEW}.crt"} <= _authorities(cluster, host)
        _all_pairs_talk(cluster, java_classes, f"trust-{host}")
    aliases = keytool_list(cluster["nodes"]["sec1.example.com"] / "ssl" / "authorities.jks")
    assert OLD in aliases and NEW in aliases

    # step 2: re-issue host by host; an old-CA cert is not "valid" for `issue` any more
    refused = run_cli("pki", "issue", "--staging", staging, "sec1.example.com")
    assert refused.rc == 1 and f"not the current CA {NEW}" in refused.err and "--renew" in refused.err
    for host in HOSTS:
        ok("pki", "issue", "--staging", staging, host, "--renew", "--sip-domain", "example.com")
        _install(cluster, host)
        assert _listing(cluster)[host]["ca"] == NEW and not _listing(cluster)[host]["reissue"]
        _all_pairs_talk(cluster, java_classes, f"reissue-{host}")
    assert "left to re-issue" not in ok("pki", "list", "--staging", staging)

    # step 3: retire the old CA; each install removes it from that node, never the admin's file
    assert "retired" in ok("pki", "retire-ca", "--staging", staging, OLD)
    for host in HOSTS:
        out = _install(cluster, host)
        assert f"removed authorities/{OLD}.crt" in out
        assert f"{OLD}.crt" not in _authorities(cluster, host) and f"{NEW}.crt" in _authorities(cluster, host)
        _all_pairs_talk(cluster, java_classes, f"retire-{host}")
    assert admin_ca.exists()
    assert OLD not in keytool_list(cluster["nodes"]["sec1.example.com"] / "ssl" / "authorities.jks")
    # the old CA no longer verifies anything on a node that dropped it
    stray = cluster["tmp"] / "old-ca.crt"
    stray.write_bytes(next(staging.glob(f"{OLD}.crt.retired-*")).read_bytes())
    assert openssl("verify", "-CApath", cluster["nodes"]["sec1.example.com"] / "ssl" / "authorities", stray,
                   check=False).returncode != 0


def test_init_ca_force_refuses_the_old_name(cluster) -> None:
    staging = cluster["staging"]
    same = run_cli("pki", "init-ca", "--staging", staging, "--force")
    assert same.rc == 1 and "reuse the old CA's name" in same.err and "rotate-ca" in same.err
    same = run_cli("pki", "init-ca", "--staging", staging, "--force", "--name", OLD)
    assert same.rc == 1 and "reuse" in same.err
    forced = ok("pki", "init-ca", "--staging", staging, "--force", "--name", "ca.other")
    assert "--web" in forced and "rotate-ca" in forced


def test_a_bundle_carries_a_web_pair_from_either_ca_during_rotation(cluster) -> None:
    staging, host = cluster["staging"], "sec1.example.com"
    ok("pki", "issue", "--staging", staging, host, "--web")  # signed by the old CA
    ok("pki", "rotate-ca", "--staging", staging, "--name", NEW)
    ok("pki", "issue", "--staging", staging, host, "--renew")  # ssl pair under the new CA, web still old
    listing = json.loads(ok("pki", "list", "--staging", staging, "--json"))
    web = next(r for r in listing if r["host"] == host and r["web"])
    assert web["ca"] == OLD and web["reissue"]
    out = _install(cluster, host)
    assert "ssl-web.crt" in out
    refused = run_cli("pki", "retire-ca", "--staging", staging, OLD)
    assert refused.rc == 1 and f"{host} --web" in refused.err


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staging area with a CA and an issued host: each usage error below comes before any of it is used,
    so no cluster is needed (only read, never changed: shared by the tests of this module)."""
    staging = tmp_path_factory.mktemp("usage") / "staging"
    ok("pki", "init-ca", "--staging", staging, "--name", OLD)
    ok("pki", "issue", "--staging", staging, "sec1.example.com")
    return staging


def _contents(staging: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(staging)): p.read_bytes() if p.is_file() else None for p in staging.rglob("*")}


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x.crt"])
def test_ca_names_that_are_not_file_stems_are_usage_errors(staging: Path, name: str) -> None:
    before = _contents(staging)
    for command in (["rotate-ca"], ["init-ca", "--force"]):
        result = run_cli("pki", *command, "--staging", staging, "--name", name)
        assert result.rc == 2 and "a CA name is letters" in result.err and "Traceback" not in result.err, result.err
    assert _contents(staging) == before
    assert not (staging.parent / "evil").exists()


def test_days_must_be_positive(staging: Path) -> None:
    before = _contents(staging)
    for command in (["init-ca", "--force", "--name", "ca.x"], ["rotate-ca"], ["issue", "h.example.com"]):
        result = run_cli("pki", *command, "--staging", staging, "--days", "-1")
        assert result.rc == 2 and "--days" in result.err and "Traceback" not in result.err, result.err
    assert _contents(staging) == before
