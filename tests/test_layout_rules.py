"""The cluster commands find their files through the desired state (cluster/layout.py), and a desired
state they cannot work with is a configuration error that names the pairs it has, never a half install.

- The web pair is the pair named ``ssl-web``: a desired state that names it otherwise gets exit 2 from
  the web and ACME commands with the pairs listed, and an ``acme`` block without it is refused on load.
- A trust source spelled ``authorities/`` or ``./authorities`` is the same directory as ``authorities``
  (``DesiredState.trust_sources()``), for the bundle install as for the reconcile.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundlekit import host_bundle, install

from conftest import keytool_list, run_cli
from pkitools import Issued, Node, seed_node

HOST = "sec1.example.com"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return host_bundle(tmp_path_factory.mktemp("layout"), HOST)


def _renamed_web_pair() -> list[dict]:
    return [
        {"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.keystore"},
        {"name": "web", "key": "ssl-web.key", "cert": "ssl-web.crt", "keystore": "ssl-web.keystore",
         "fallback": "ssl"},
    ]


def test_web_commands_name_the_pairs_when_none_is_the_web_pair(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    node.desired.write_text(json.dumps({"hostname": HOST, "pairs": _renamed_web_pair()}))
    for command in (("web", "csr", "--subject", "/CN=sec1.example.com", "-o", tmp_path / "x.csr"),
                    ("web", "rollback")):
        done = run_cli(*command, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
        assert done.rc == 2, done.out + done.err
        assert "no pair named 'ssl-web'" in done.err and "pairs: ssl, web" in done.err, done.err
    assert not (node.ssl_dir / "ssl-web.key.pending").exists()


def test_an_acme_block_without_the_web_pair_is_refused_on_load(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    acme = {"directory": "https://127.0.0.1:14000/dir", "names": [HOST], "challenge": {"webroot": str(tmp_path)}}
    node.desired.write_text(json.dumps({"hostname": HOST, "pairs": _renamed_web_pair(), "acme": acme}))
    for command in (("acme", "status"), ("check",)):
        done = run_cli(*command, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
        assert done.rc == 2, done.out + done.err
        assert "acme renews the web pair" in done.err and "pairs: ssl, web" in done.err, done.err


def test_install_bundle_names_the_pairs_when_its_web_pair_has_no_home(tmp_path: Path, bundle: Path) -> None:
    node = Node(tmp_path / "node", HOST, None, None)  # type: ignore[arg-type]  # the bundle brings it
    node.root.mkdir()
    node.desired.write_text(json.dumps({"hostname": HOST, "pairs": _renamed_web_pair()[:1]}))
    done = install(node, bundle)
    assert done.rc == 1, done.out + done.err
    assert "carries ssl-web.crt" in done.err and "no pair named 'ssl-web'" in done.err, done.err
    assert "pairs: ssl)" in done.err, done.err
    assert not node.ssl_dir.exists() or not any(node.ssl_dir.glob("*.crt"))  # nothing installed


@pytest.mark.parametrize("spelling", ["authorities/", "./authorities", "authorities"])
def test_install_bundle_takes_a_trust_source_however_it_is_spelled(tmp_path: Path, bundle: Path,
                                                                    spelling: str) -> None:
    node = Node(tmp_path / "node", HOST, None, None)  # type: ignore[arg-type]  # the bundle brings it
    node.root.mkdir()
    node.desired.write_text(json.dumps({"hostname": HOST, "truststore": {"sources": [spelling]}}))
    done = install(node, bundle)
    assert done.rc == 0, done.out + done.err
    assert (node.ssl_dir / "authorities" / "ca.cluster.example.com.crt").is_file()
    assert "authorities/ca.cluster.example.com.crt" in done.out and "//" not in done.out, done.out
    assert "ca.cluster.example.com" in keytool_list(node.ssl_dir / "authorities.jks")
