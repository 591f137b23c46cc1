"""Issue 24: real consumers from Debian (Apache 2.4 mod_ssl, nginx, Kamailio's tls module) serve what the
reconciler keeps, on 127.0.0.1, started and stopped by the test (consumerkit). Each serves a pair, trusts
the accepted CAs (Apache and Kamailio through the hash links in ``authorities/``, nginx through a CA
file), takes mutual TLS from another node's pair, refuses a client of an unknown CA and one presenting
a self-signed certificate the reconciler refused in ``authorities/``, and sees a new pair once the reconcile's hook reloaded it.

The files served are the reconciler's verified PEM outputs (``live/<pair>.key`` and
``live/<pair>.fullchain.pem``, one set swapped at once) and its PEM CA bundle (``authorities.pem``, only
what the truststore accepted); ``served()`` and ``ca_file_for()`` are the one place naming them. A bad
pair dropped into the sources leaves them as they were, and a consumer reloaded then (as logrotate's
nightly graceful does) keeps serving the last good pair.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from consumerkit import Apache, Kamailio, Nginx, Server, let_children_in, wait_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from tlschecks import served_fingerprint

from conftest import reconcile
from pkitools import Issued, Node, make_ca, make_host, name, new_key, seed_node, write

HOST = "pbx.example.com"
KINDS = ["apache2", "nginx", "kamailio"]
# The same servers trusting one CA file instead of the hash-linked dir (Apache SSLCACertificateFile,
# Kamailio ca_list): the shape the truststore's CA bundle takes.
CA_FILE_KINDS = ["apache2-ca-file", "kamailio-ca-list"]
# The artifact whose rewrite follows each consumer's pair (its PEM output), and the truststore's.
PAIR_ARTIFACT = {"apache2": "live/ssl-web.fullchain.pem", "nginx": "live/ssl-web.fullchain.pem",
                 "kamailio": "live/ssl.fullchain.pem"}
TRUST_ARTIFACT = "authorities.jks"


def self_signed_leaf(host: str) -> Issued:
    """A self-signed certificate that is no CA: the reconciler refuses it in ``authorities/``."""
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(name(host))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def pair_files(directory: Path, stem: str, issued: Issued) -> tuple[Path, Path]:
    return (
        write(directory / f"{stem}.crt", issued.cert_pem()),
        write(directory / f"{stem}.key", issued.key_pem(), 0o600),
    )


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = make_ca("Cluster CA")
        self.node: Node = seed_node(root / "a", HOST, self.ca, web=True)
        other = seed_node(root / "b", "b.example.com", self.ca)  # another node of the cluster: its pair
        self.peer = (other.ssl_dir / "ssl.crt", other.ssl_dir / "ssl.key")
        self.stranger = pair_files(root / "clients", "stranger", make_host(make_ca("Stranger CA"), "c.example.com"))
        self.server_ca = write(root / "clients" / "cluster-ca.pem", self.ca.cert_pem())  # the clients' trust
        let_children_in(self.ssl / "authorities")

    @property
    def ssl(self) -> Path:
        return self.node.ssl_dir

    def served(self, kind: str) -> tuple[Path, Path]:
        """(key, certificate) the consumer serves: the PEM outputs of the web pair for the web servers,
        of the SIP pair for Kamailio (the full chain: leaf, then intermediates)."""
        stem = "ssl" if kind.startswith("kamailio") else "ssl-web"
        return self.ssl / "live" / f"{stem}.key", self.ssl / "live" / f"{stem}.fullchain.pem"

    def ca_file_for(self) -> Path:
        """The CA file for nginx (and Apache's, Kamailio's CA-file variants): the reconciler's PEM CA
        bundle, every CA the truststore accepted and nothing it refused."""
        return self.ssl / "authorities.pem"

    def server(self, kind: str) -> Server:
        key, cert = self.served(kind)
        workdir = self.root / kind
        if kind == "apache2":
            return Apache(workdir, key, cert, ca_path=self.ssl / "authorities")
        if kind == "apache2-ca-file":
            return Apache(workdir, key, cert, ca_file=self.ca_file_for())
        if kind == "nginx":
            return Nginx(workdir, key, cert, ca_file=self.ca_file_for())
        if kind == "kamailio-ca-list":
            return Kamailio(workdir, key, cert, ca_file=self.ca_file_for())
        return Kamailio(workdir, key, cert, ca_path=self.ssl / "authorities")

    def expected(self, kind: str) -> Issued:
        assert self.node.web is not None
        return self.node.ssl if kind.startswith("kamailio") else self.node.web

    def reconcile(self, hooks: list[dict[str, object]] | None = None) -> dict[str, object]:
        self.node.desired.write_text(json.dumps({"hostname": HOST, "hooks": hooks or []}))
        done = reconcile(self.node)
        assert done.rc == 0, done.out + done.err
        report: dict[str, object] = json.loads(done.out)
        return report

    def accepts(self, server: Server, client: tuple[Path, Path]) -> bool:
        return server.accepts(HOST, self.server_ca, *client)


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path)
    w.reconcile()  # the stores and the hash links in authorities/
    return w


def hash_links(authorities: Path) -> set[str]:
    return {p.name for p in authorities.iterdir() if p.is_symlink()}


@pytest.mark.parametrize("kind", KINDS + CA_FILE_KINDS)
def test_consumer_serves_the_pair_takes_the_cluster_and_refuses_the_rest(world: World, kind: str) -> None:
    """Each consumer serves the node's pair; another node's pair is accepted; a client of an unknown CA
    and one presenting a self-signed certificate the reconciler refused (and so gave no hash link, and
    left out of the CA file) are refused."""
    rogue = self_signed_leaf("rogue.example.com")
    write(world.ssl / "authorities" / "rogue.crt", rogue.cert_pem())
    before = hash_links(world.ssl / "authorities")
    refused = reconcile(world.node)
    assert "rogue.crt" in refused.out and "untrusted" in refused.out, refused.out  # refused, named
    assert hash_links(world.ssl / "authorities") == before  # and given no hash link
    rogue_client = pair_files(world.root / "clients", "rogue", rogue)
    with world.server(kind) as server:
        assert served_fingerprint(server.port, *world.peer) == world.expected(kind).fingerprint()
        assert world.accepts(server, world.peer), server.logs()
        assert not world.accepts(server, world.stranger)
        assert not world.accepts(server, rogue_client)
        assert server.alive()


def _wrapper_hook(server: Server) -> list[str]:
    # run through /bin/sh: the check of a root hook's program judges command[0], and a checkout may
    # live under a directory others can write; the installed wrapper is run directly.
    argv = server.reload_argv()
    return ["/bin/sh", *argv] if isinstance(server, Kamailio) else argv


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_pair_reaches_the_consumer_through_the_reconciles_hook(world: World, kind: str) -> None:
    """A new pair in the sources; the reconcile rewrites the store that follows it and runs the consumer's
    reload as its hook; the consumer then serves the new certificate (and still takes the cluster)."""
    stem = "ssl" if kind == "kamailio" else "ssl-web"
    with world.server(kind) as server:
        old = world.expected(kind).fingerprint()
        assert served_fingerprint(server.port, *world.peer) == old
        new = make_host(world.ca, HOST)
        pair_files(world.ssl, stem, new)
        hook = {
            "name": f"reload {kind}",
            "after": [PAIR_ARTIFACT[kind]],
            "command": _wrapper_hook(server),
            "timeout": 30,
        }
        report = world.reconcile([hook])
        outcome = report["hooks"][f"reload {kind}"]  # type: ignore[index]
        assert outcome["outcome"] == "ok", (outcome, server.logs())
        wait_for(
            lambda: served_fingerprint(server.port, *world.peer) == new.fingerprint(),
            20,
            f"{kind} serving the new certificate",
        )
        assert world.accepts(server, world.peer)
        assert server.alive()


def test_apache_trusts_a_removed_ca_until_the_truststore_hook_reloads_it(world: World) -> None:
    """A partner CA removed from authorities/: its hash link goes at once, but Apache keeps the CA it
    already loaded until a graceful, so its hook must follow the truststore too."""
    partner_ca = make_ca("Partner CA")
    write(world.ssl / "authorities" / "partner-ca.crt", partner_ca.cert_pem())
    world.reconcile()
    partner = pair_files(world.root / "clients", "partner", make_host(partner_ca, "p.example.com"))
    with world.server("apache2") as apache:
        assert world.accepts(apache, partner)
        (world.ssl / "authorities" / "partner-ca.crt").unlink()
        world.reconcile()  # no hook: the link is gone, Apache still trusts the partner
        assert not any(
            x509.load_pem_x509_certificate((world.ssl / "authorities" / link).read_bytes()).subject
            == partner_ca.cert.subject
            for link in hash_links(world.ssl / "authorities")
        )
        assert world.accepts(apache, partner)
        # A truststore change with the hook: a graceful, and the partner is refused.
        write(world.ssl / "authorities" / "extra-ca.crt", make_ca("Extra CA").cert_pem())
        hook = {"name": "graceful", "after": [TRUST_ARTIFACT], "command": apache.reload_argv()}
        assert world.reconcile([hook])["hooks"]["graceful"]["outcome"] == "ok"  # type: ignore[index]
        wait_for(lambda: not world.accepts(apache, partner), 20, "Apache refusing the removed CA")
        assert world.accepts(apache, world.peer)


def test_kamailio_reload_wrapper_fails_when_kamailio_refuses_the_reload(world: World) -> None:
    """``kamcmd tls.reload`` exits 0 when Kamailio refuses a mismatched pair; the shipped wrapper exits 1
    and Kamailio keeps serving the previous pair; with a good pair the wrapper exits 0 and the new one is
    served. With no Kamailio to answer, the wrapper fails too."""
    with world.server("kamailio") as kamailio:
        assert isinstance(kamailio, Kamailio)
        old = world.node.ssl.fingerprint()
        key, cert = world.served("kamailio")
        good_key = key.read_bytes()
        write(key, make_host(world.ca, HOST).key_pem(), 0o600)  # a key that does not match ssl.crt
        raw = kamailio.kamcmd_reload()
        assert raw.returncode == 0 and "TLS configuration reloaded" not in raw.stdout  # the lie
        refused = kamailio.reload()
        assert refused.returncode == 1, refused
        assert served_fingerprint(kamailio.port, *world.peer) == old and kamailio.alive()
        write(key, good_key, 0o600)
        new = make_host(world.ca, HOST, key=world.node.ssl.key)
        write(cert, new.cert_pem())
        done = kamailio.reload()
        assert done.returncode == 0, (done.stdout, done.stderr, kamailio.logs()[-3000:])
        assert served_fingerprint(kamailio.port, *world.peer) == new.fingerprint()
    missing = kamailio.reload()  # stopped: nothing answers on the control socket
    assert missing.returncode == 1, missing


def test_nginx_on_a_concatenation_of_authorities_takes_the_refused_certificate(world: World) -> None:
    """Why nginx needs a CA file made from what the reconciler accepted: ``cat authorities/*.crt`` carries
    a self-signed certificate the reconciler refused, and nginx then takes a client presenting it (the
    control for the refusal checked above)."""
    rogue = self_signed_leaf("rogue.example.com")
    write(world.ssl / "authorities" / "rogue.crt", rogue.cert_pem())
    reconcile(world.node)
    files = sorted(p for p in (world.ssl / "authorities").glob("*.crt") if not p.is_symlink())
    naive = write(world.root / "trust" / "cat.pem", b"".join(p.read_bytes() for p in files))
    key, cert = world.served("nginx")
    with Nginx(world.root / "nginx-cat", key, cert, ca_file=naive) as nginx:
        assert world.accepts(nginx, world.peer)
        assert world.accepts(nginx, pair_files(world.root / "clients", "rogue", rogue))


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_pair_in_the_sources_leaves_the_consumer_serving_the_last_good_one(world: World, kind: str) -> None:
    """A key that does not match the certificate dropped into the sources: the reconcile names the source
    and keeps the PEM outputs as they were (no hook runs), and the consumer, reloaded anyway (logrotate's
    nightly graceful, a restart), keeps serving the last good pair instead of failing."""
    stem = "ssl" if kind == "kamailio" else "ssl-web"
    key, cert = world.served(kind)
    with world.server(kind) as server:
        good = world.expected(kind).fingerprint()
        before = (key.read_bytes(), cert.read_bytes())
        write(world.ssl / f"{stem}.key", make_host(world.ca, HOST).key_pem(), 0o600)  # another pair's key
        done = reconcile(world.node)
        assert done.rc == 1, done.out + done.err
        report = json.loads(done.out)
        assert any(f["file"].endswith(f"{stem}.key") or f["file"].endswith(f"{stem}.crt")
                   for f in report["findings"]), report["findings"]
        assert (key.read_bytes(), cert.read_bytes()) == before  # the PEM outputs: last good
        reloaded = server.reload()
        assert reloaded.returncode == 0, (reloaded.stdout, reloaded.stderr, server.logs()[-3000:])
        assert served_fingerprint(server.port, *world.peer) == good
        assert world.accepts(server, world.peer) and server.alive()
