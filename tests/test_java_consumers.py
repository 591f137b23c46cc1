"""Issue 24: real Java consumers from Debian serve what the reconciler keeps, on 127.0.0.1, started and
stopped by the test (javaconsumerkit): embedded Tomcat 10.1 (libtomcat10-java: the NIO connector, one
SSLHostConfig on the keystore, ``authorities.jks`` as truststore, client certificates required) and Jetty
9.4 (libjetty9-java: ``SslContextFactory.Server`` on the same stores with a ``KeyStoreScanner``).

Tomcat serves the pair from ``ssl-web.keystore`` (or ``ssl-web.p12``), takes mutual TLS from another node's
pair and refuses a client of an unknown CA; a new pair in the sources reaches it through the reconcile's
hook (the connector's ``reloadSslHostConfigs()``, what the Manager's ``sslReload`` does); a bad pair leaves
the keystore as it was and a reload keeps the last good pair. Jetty's scanner picks up the rewritten
keystore (one rename) with no hook at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from consumerkit import Server
from javaconsumerkit import JavaServer, Jetty, Tomcat, compile_consumers
from test_consumers import HOST, World, pair_files
from tlschecks import mutual_tls, served_fingerprint, wait_for

from conftest import reconcile
from pkitools import make_host, write

SCAN_DEADLINE = 60.0  # Jetty's scanner runs every second; generous, both cores may be busy
STORES = {"JKS": "ssl-web.keystore", "PKCS12": "ssl-web.p12"}


@pytest.fixture(scope="module")
def consumer_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_consumers(tmp_path_factory.mktemp("java-consumers"))


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.reconcile()  # the stores
    return w


def java_server(world: World, classes: Path, kind: str, storetype: str = "JKS") -> JavaServer:
    cls = Tomcat if kind == "tomcat" else Jetty
    return cls(world.root / f"{kind}-{storetype}", classes, world.ssl / STORES[storetype],
               world.ssl / "authorities.jks", storetype=storetype)


def assert_takes_the_cluster_only(world: World, server: Server) -> None:
    assert world.accepts(server, world.peer), server.logs()[-3000:]  # HTTPS 200 with another node's pair
    assert mutual_tls(server.port, world.server_ca, *world.peer)
    assert not world.accepts(server, world.stranger)
    assert not mutual_tls(server.port, world.server_ca, *world.stranger)
    assert server.alive()


@pytest.mark.parametrize("storetype", ["JKS", "PKCS12"])
@pytest.mark.parametrize("kind", ["tomcat", "jetty"])
def test_java_consumer_serves_the_store_takes_the_cluster_and_refuses_a_stranger(
    world: World, consumer_classes: Path, kind: str, storetype: str
) -> None:
    assert world.node.web is not None
    with java_server(world, consumer_classes, kind, storetype) as server:
        assert served_fingerprint(server.port, *world.peer) == world.node.web.fingerprint()
        assert_takes_the_cluster_only(world, server)


def test_a_new_pair_reaches_tomcat_through_the_reconciles_hook(world: World, consumer_classes: Path) -> None:
    """A new web pair in the sources; the reconcile rewrites ssl-web.keystore and runs the hook, which asks
    Tomcat to reload its SSL host configs; Tomcat then serves the new certificate. Without the reload it
    keeps the old one (the control)."""
    assert world.node.web is not None
    with java_server(world, consumer_classes, "tomcat") as tomcat:
        assert isinstance(tomcat, Tomcat)
        old = world.node.web.fingerprint()
        assert served_fingerprint(tomcat.port, *world.peer) == old
        first = make_host(world.ca, HOST)
        pair_files(world.ssl, "ssl-web", first)
        world.reconcile()  # no hook: the keystore is new, Tomcat still has the old one loaded
        assert served_fingerprint(tomcat.port, *world.peer) == old
        second = make_host(world.ca, HOST)
        pair_files(world.ssl, "ssl-web", second)
        hook = {"name": "tomcat sslReload", "after": ["ssl-web.keystore"], "command": tomcat.reload_argv(),
                "timeout": 30}
        report = world.reconcile([hook])
        outcome = report["hooks"]["tomcat sslReload"]  # type: ignore[index]
        assert outcome["outcome"] == "ok", (outcome, tomcat.logs()[-3000:])
        assert tomcat.wait_reloaded(1) == "RELOADED 1", tomcat.logs()[-3000:]
        assert served_fingerprint(tomcat.port, *world.peer) == second.fingerprint()
        assert_takes_the_cluster_only(world, tomcat)


def test_a_bad_pair_leaves_tomcat_serving_the_last_good_one(world: World, consumer_classes: Path) -> None:
    """A key that does not match ssl-web.crt dropped into the sources: the reconcile names it and keeps
    ssl-web.keystore as it was; Tomcat reloaded anyway keeps serving the last good pair."""
    assert world.node.web is not None
    store = world.ssl / STORES["JKS"]
    with java_server(world, consumer_classes, "tomcat") as tomcat:
        assert isinstance(tomcat, Tomcat)
        good = world.node.web.fingerprint()
        before = store.read_bytes()
        write(world.ssl / "ssl-web.key", make_host(world.ca, HOST).key_pem(), 0o600)  # another pair's key
        done = reconcile(world.node)
        assert done.rc == 1, done.out + done.err
        findings = json.loads(done.out)["findings"]
        assert any(f["file"].endswith(("ssl-web.key", "ssl-web.crt")) for f in findings), findings
        assert store.read_bytes() == before  # the keystore: last good
        reloaded = tomcat.reload()
        assert reloaded.returncode == 0, (reloaded.stdout, reloaded.stderr)
        assert tomcat.wait_reloaded(1) == "RELOADED 1", tomcat.logs()[-3000:]
        assert served_fingerprint(tomcat.port, *world.peer) == good
        assert_takes_the_cluster_only(world, tomcat)


def test_jettys_keystore_scanner_serves_the_rewritten_keystore_with_no_hook(
    world: World, consumer_classes: Path
) -> None:
    """A new web pair in the sources; the reconcile replaces ssl-web.keystore (one rename) and runs no hook;
    Jetty's KeyStoreScanner sees the new file and Jetty serves the new certificate."""
    assert world.node.web is not None
    store = world.ssl / STORES["JKS"]
    with java_server(world, consumer_classes, "jetty") as jetty:
        assert served_fingerprint(jetty.port, *world.peer) == world.node.web.fingerprint()
        inode = store.stat().st_ino
        new = make_host(world.ca, HOST)
        pair_files(world.ssl, "ssl-web", new)
        report = world.reconcile()
        assert not report.get("hooks"), report.get("hooks")
        assert store.stat().st_ino != inode  # replaced by a rename, not rewritten in place
        wait_for(lambda: served_fingerprint(jetty.port, *world.peer) == new.fingerprint(), SCAN_DEADLINE,
                 "jetty serving the new certificate")
        assert_takes_the_cluster_only(world, jetty)
