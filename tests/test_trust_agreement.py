"""OpenSSL and Java agree with the report: one table of good and bad chains, one reconcile, then
`openssl verify -CApath authorities/` through the links the reconcile keeps, and Java's own PKIX
(tests/java/PathCheck.java: CertPathBuilder + CertPathValidator, revocation off) with the
authorities.jks anchors."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import copied_node, isolate_env, java_bin, keytool_list, reconcile
from pkitools import NOW, Issued, Node, make_ca, make_host, seed_node, write
from trustkit import NO_CERTSIGN_KU, V1, cert, dns, openssl_v1

Chain = list[Issued]  # leaf first, then what ships with it


def _table(ca: Issued, v1: V1, der_ca: Issued, lone: Issued) -> dict[str, tuple[Callable[[], Chain], bool]]:
    """name -> (the chain file's certificates, verified?)."""

    def pathlen(n: int) -> Chain:
        top = cert(f"PathLen {n}", ca, path_length=n)
        mid = cert("Below", top)
        return [cert("deep.example.com", mid, ca=False), mid, top]

    def cross() -> Chain:
        new_root = cert("New Root")
        inter = cert("Cross Issuing", new_root)
        crossed = cert("Cross Issuing", ca, the_key=inter.key)  # same name and key, signed by the cluster CA
        return [cert("crossed.example.com", inter, ca=False), crossed, inter]

    def outside_root() -> Chain:
        root = cert("Outside Root")
        inter = cert("Outside Issuing", root)
        return [cert("outside.example.com", inter, ca=False), inter, root]

    def one(inter: Issued, host: str = "leaf.example.com", **kw) -> Chain:
        return [cert(host, inter, ca=False, **kw), inter]

    return {
        "direct": (lambda: [make_host(ca, "peer.example.com")], True),
        "ec-intermediate": (lambda: one(cert("EC Issuing", ca, kind="ec", path_length=0), kind="ec"), True),
        "pathlen-1": (lambda: pathlen(1), True),
        "pathlen-0": (lambda: pathlen(0), False),
        "ca-false-issuer": (lambda: one(make_host(ca, "peer.example.com")), False),
        "no-keycertsign": (lambda: one(cert("No CertSign", ca, ku=NO_CERTSIGN_KU)), False),
        "v3-without-bc": (lambda: one(cert("No BC", ca, ca=None)), False),
        "nc-held": (lambda: one(cert("Voice", ca, permitted=dns(".voice.example.com")), "pbx.voice.example.com"),
                    True),
        "nc-broken": (lambda: one(cert("Voice", ca, permitted=dns(".voice.example.com")), "pbx.example.com"), False),
        "nc-excluded": (lambda: one(cert("Not Bad", ca, excluded=dns("bad.example.com")), "x.bad.example.com"),
                        False),
        "outside-root-inside": (outside_root, False),
        "expired-intermediate": (
            lambda: one(cert("Old", ca, not_before=NOW - dt.timedelta(days=400), days=30)), False),
        "unknown-critical": (lambda: [cert("odd.example.com", ca, ca=False, unknown_critical=True)], False),
        "cross-signed": (cross, True),
        "v1-leaf": (lambda: [v1.leaf], True),
        "v1-intermediate": (lambda: [v1.leaf2, v1.inter], False),
        "impostor-issuer": (lambda: [make_host(make_ca("ca.master.example.com"), "imp.example.com")], False),
        "under-der-ca": (lambda: [make_host(der_ca, "der-peer.example.com")], True),
        "under-lone-intermediate": (lambda: [make_host(lone, "lone-peer.example.com")], True),
    }


# verified by the report, but OpenSSL cannot see it through -CApath: the finding that says so, on which file
OPENSSL_CANNOT = {
    "under-der-ca": ("authorities/der-ca.der", "no-hash-link"),
    "under-lone-intermediate": ("authorities/lone-inter.crt", "partial-chain"),
}


@pytest.fixture(scope="module")
def built_scene(tmp_path_factory: pytest.TempPathFactory, ca: Issued) -> tuple[tuple[Node, Path], dict[str, bool], dict]:
    """The table's node reconciled once per module (under ``isolate_env``; its state dir beside it), what
    each case should get, and the report: tests take ``scene``, their own copy."""
    tmp_path = tmp_path_factory.mktemp("scene")
    with pytest.MonkeyPatch.context() as mp:
        isolate_env(mp, tmp_path)
        node, expected, report = _scene(tmp_path, ca)
    return (node, tmp_path / "state"), expected, report


@pytest.fixture
def scene(built_scene: tuple[tuple[Node, Path], dict[str, bool], dict], tmp_path: Path
          ) -> tuple[Node, dict[str, bool], dict]:
    template, expected, report = built_scene
    return copied_node(template, tmp_path), expected, report


def _scene(tmp_path: Path, ca: Issued) -> tuple[Node, dict[str, bool], dict]:
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    auth = node.ssl_dir / "authorities"
    v1 = openssl_v1(tmp_path / "v1")
    der_ca = make_ca("DER CA")
    lone = cert("Lone Issuing", cert("Absent Root"))  # an intermediate CA without its root
    write(auth / "v1-root.crt", v1.root.cert_pem())
    write(auth / "der-ca.der", der_ca.cert_der())
    write(auth / "lone-inter.crt", lone.cert_pem())
    expected = {}
    for name, (build, ok) in _table(ca, v1, der_ca, lone).items():
        write(auth / f"case-{name}.crt", b"".join(c.cert_pem() for c in build()))
        expected[name] = ok
    return node, expected, reconcile(node).json()


def _report_verdicts(node: Node, report: dict, names) -> dict[str, bool]:
    untrusted = {f["file"] for f in report["findings"] if f["code"] == "untrusted"}
    aliases = set(keytool_list(node.ssl_dir / "authorities.jks"))
    out = {}
    for name in names:
        verified = f"authorities/case-{name}.crt" not in untrusted
        assert verified == (f"case-{name}" in aliases), name  # verified <=> in the truststore
        out[name] = verified
    return out


def _openssl_ok(auth: Path, chain_file: Path) -> bool:
    proc = subprocess.run(["openssl", "verify", "-CApath", str(auth), "-untrusted", str(chain_file), str(chain_file)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and proc.stdout.strip().endswith("OK")


def test_the_report_matches_the_table(scene) -> None:
    node, expected, report = scene
    assert _report_verdicts(node, report, expected) == expected
    codes = {(f["file"], f["code"]) for f in report["findings"]}
    assert set(OPENSSL_CANNOT.values()) <= codes


def test_openssl_agrees_through_the_projects_own_links(scene) -> None:
    node, expected, report = scene
    auth = node.ssl_dir / "authorities"
    verdicts = _report_verdicts(node, report, expected)
    said = {(f["file"], f["code"]) for f in report["findings"]}
    for name, verified in verdicts.items():
        ok = _openssl_ok(auth, auth / f"case-{name}.crt")
        if name in OPENSSL_CANNOT:
            # verified against a CA OpenSSL cannot use (DER; no root): the report says so about that file
            assert verified and not ok and OPENSSL_CANNOT[name] in said, name
            continue
        assert ok == verified, (name, verified)
    for pair in ("ssl.crt", "ssl-web.crt"):  # the pairs the report calls verified
        assert _openssl_ok(auth, node.ssl_dir / pair), pair
    # after the DER file is replaced with its PEM form, as the finding says, OpenSSL agrees there too
    der = auth / "der-ca.der"
    write(auth / "der-ca.crt", subprocess.run(["openssl", "x509", "-inform", "der", "-in", str(der)],
                                              capture_output=True, check=True, timeout=60).stdout)
    der.unlink()
    report = reconcile(node).json()
    assert "no-hash-link" not in {f["code"] for f in report["findings"] if f["file"].startswith("authorities/der")}
    assert _openssl_ok(auth, auth / "case-under-der-ca.crt")


def test_java_pkix_agrees(scene, java_classes: Path) -> None:
    node, expected, report = scene
    auth = node.ssl_dir / "authorities"
    verdicts = _report_verdicts(node, report, expected)
    files = [str(auth / f"case-{name}.crt") for name in verdicts]
    files += [str(node.ssl_dir / "ssl.crt"), str(node.ssl_dir / "ssl-web.crt")]
    proc = subprocess.run([java_bin("system"), "-cp", str(java_classes), "PathCheck",
                           str(node.ssl_dir / "authorities.jks"), "changeit", *files],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    java = {}
    for line in proc.stdout.splitlines():
        path, verdict = line.split(" ", 2)[:2]
        java[Path(path).name] = verdict == "OK"
    disagreements = {n: (v, java[f"case-{n}.crt"]) for n, v in verdicts.items() if java[f"case-{n}.crt"] != v}
    assert disagreements == {}, proc.stdout
    assert java["ssl.crt"] and java["ssl-web.crt"], proc.stdout
    assert not all(java.values())  # the table has bad chains, and Java refuses them too
