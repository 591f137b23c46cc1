"""Issue 27, a cold build on both cores: the same tree of a few hundred trust certificates (self-signed CAs,
leaves they signed, an untrusted leaf, duplicates, three CAs of one subject (one hash, three links), DER, multi-certificate files, bad files, an alias clash)
built cold in a new process serially (SSLRECONCILER_WORKERS=1) and with worker processes gives the same
stores, hash links and report; so does a build whose first worker is killed in the middle of its work.

Each build runs ``sslreconciler reconcile`` as a real process through a small runner that counts its forks
(``os.register_at_fork``), so the parallel build is shown to have used workers and the serial one none.
The stores are compared as keytool reads them, and authorities.jks byte for byte but for its entries'
creation times (and the digest over them); the links as names -> targets, checked with ``openssl x509 -hash``
and ``openssl verify -CApath``."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from conftest import PASSWORD, openssl, run_cli
from pkitools import Issued, make_ca, make_host, seed_node, write

RUNNER = r"""
import os, signal, sys
forks = []


def child():
    if os.environ.get("KILL_FIRST_WORKER") == "1" and not forks:  # the first worker: SIGKILLed mid-work
        import sslreconciler.reconcile.parallel as parallel

        run_chunk, done = parallel._run_chunk, []

        def dies_at_the_20th(item):
            done.append(1)
            if len(done) == 20:
                os.kill(os.getpid(), signal.SIGKILL)
            return item

        # The pool sends its chunk runner by name: this worker looks up this one, whatever is mapped.
        parallel._run_chunk = lambda fn, chunk: run_chunk(lambda x: fn(dies_at_the_20th(x)), chunk)


os.register_at_fork(after_in_parent=lambda: forks.append(1), after_in_child=child)
from sslreconciler.cli.app import main
try:
    rc = main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        out.write(str(len(forks)))
sys.exit(rc)
"""
CAS, SIGNERS, LEAVES_EACH = 300, 20, 10


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, ca: Issued) -> Path:
    """A seed-layout node whose authorities/ holds about 560 certificates of every kind a trust dir meets."""
    root = tmp_path_factory.mktemp("parallel-build") / "n"
    seed_node(root, "master.example.com", ca)
    auth = root / "ssl" / "authorities"
    cas = [make_ca(f"ca{i:03d}.example.com", kind="ec") for i in range(CAS)]
    for i, c in enumerate(cas):
        write(auth / f"ca{i:03d}.crt", c.cert_pem())
    for i, signer in enumerate(cas[:SIGNERS]):
        for j in range(LEAVES_EACH):
            write(auth / f"leaf{i:02d}-{j}.crt", make_host(signer, f"leaf{i}-{j}.example.com", kind="ec").cert_pem())
    stranger = make_ca("stranger.example.com", kind="ec")  # not trusted: its leaf is left out
    write(auth / "untrusted-leaf.crt", make_host(stranger, "untrusted.example.com", kind="ec").cert_pem())
    for i in range(5):
        write(auth / f"dup{i}.pem", cas[i].cert_pem())  # the same certificate as ca00i.crt
    for i in range(10):
        write(auth / f"der{i}.der", make_ca(f"der{i}.example.com", kind="ec").cert.public_bytes(Encoding.DER))
    for i in range(10):
        pair = [make_ca(f"multi{i}-{k}.example.com", kind="ec") for k in range(2)]
        write(auth / f"multi{i}.crt", b"".join(c.cert_pem() for c in pair))
    for i in range(3):  # one subject, three keys: <hash>.0, .1, .2 in file-name order
        write(auth / f"same{i}.crt", make_ca("same.example.com", kind="ec").cert_pem())
    write(auth / "garbage.crt", b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    write(auth / "empty.pem", b"")
    write(auth / "Clash.crt", make_ca("clash-a.example.com", kind="ec").cert_pem())  # alias "clash" twice
    write(auth / "clash.pem", make_ca("clash-b.example.com", kind="ec").cert_pem())
    return root


def build(template: Path, dest: Path, **env: str) -> tuple[dict, int]:
    """A copy of the template reconciled cold in a new process; its --json report and how many forks it made."""
    shutil.copytree(template, dest, symlinks=True)
    forks = dest / "forks"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(forks), "reconcile", "--ssl-dir", str(dest / "ssl"), "--desired-state",
         str(dest / "desired-state.json"), "--state-dir", str(dest / "state"), "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: the bad files' findings
    return json.loads(proc.stdout.replace(str(dest), "ROOT")), int(forks.read_text())


def jks_without_times(data: bytes) -> bytes:
    """A truststore JKS with every entry's creation time zeroed and the trailing digest cut (they cover the
    time): what must be identical between two builds of the same content."""
    assert data[:4] == b"\xfe\xed\xfe\xed", "not a JKS"
    out, pos = bytearray(data[:12]), 12
    for _ in range(struct.unpack(">I", data[8:12])[0]):
        tag = data[pos : pos + 4]
        assert tag == b"\x00\x00\x00\x02", "a trusted-certificate store only"
        (alias_len,) = struct.unpack(">H", data[pos + 4 : pos + 6])
        head_end = pos + 6 + alias_len
        out += data[pos:head_end] + bytes(8)  # the creation time, zeroed
        pos = head_end + 8
        (type_len,) = struct.unpack(">H", data[pos : pos + 2])
        (cert_len,) = struct.unpack(">I", data[pos + 2 + type_len : pos + 6 + type_len])
        end = pos + 6 + type_len + cert_len
        out += data[pos:end]
        pos = end
    assert len(data) - pos == 20, "trailing bytes after the entries and the digest"
    return bytes(out)


def keytool_view(store: Path, storetype: str) -> list[tuple[str, str]]:
    """(alias, SHA-256) for every certificate keytool reads in the store, in its order."""
    proc = subprocess.run(["keytool", "-list", "-v", "-keystore", str(store), "-storepass", PASSWORD, "-storetype",
                           storetype], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alias, out = "", []
    for line in proc.stdout.splitlines():
        if line.startswith("Alias name: "):
            alias = line.split(": ", 1)[1]
        elif line.strip().startswith("SHA256:"):
            out.append((alias, line.split(":", 1)[1].strip()))
    return out


def links(directory: Path) -> dict[str, str]:
    return {p.name: os.readlink(p) for p in sorted(directory.iterdir()) if p.is_symlink()}


def outputs(ssl: Path) -> dict[str, bytes]:
    """Every regular output file's bytes but the stores' (which carry times and salts): the PEM set, the bundle."""
    live = ssl / "live"
    files = {f"live/{p.name}": p.read_bytes() for p in sorted(live.iterdir())} if live.exists() else {}
    files |= {p.name: p.read_bytes() for p in sorted(ssl.glob("*.pem"))}
    return files


def report_without_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("started_at", "duration_ms")}


def same_build(a: Path, b: Path, report_a: dict, report_b: dict) -> None:
    assert report_without_times(report_a) == report_without_times(report_b)
    ssl_a, ssl_b = a / "ssl", b / "ssl"
    assert jks_without_times((ssl_a / "authorities.jks").read_bytes()) == jks_without_times(
        (ssl_b / "authorities.jks").read_bytes()
    )
    for store, kind in (("authorities.jks", "JKS"), ("ssl.keystore", "JKS"), ("ssl.p12", "PKCS12")):
        if (ssl_a / store).exists() or (ssl_b / store).exists():
            assert keytool_view(ssl_a / store, kind) == keytool_view(ssl_b / store, kind), store
    assert outputs(ssl_a) == outputs(ssl_b)
    assert links(ssl_a / "authorities") == links(ssl_b / "authorities")
    assert (a / "state" / "last-report.json").exists() and (b / "state" / "last-report.json").exists()


def check_with_openssl(root: Path, report: dict) -> None:
    """The links OpenSSL itself would follow: each name is its target's subject hash, and -CApath verifies
    a leaf through them."""
    auth = root / "ssl" / "authorities"
    made = links(auth)
    assert len(made) > CAS, f"{len(made)} hash links"
    for name in sorted(made)[:: max(1, len(made) // 12)]:
        assert openssl("x509", "-hash", "-noout", "-in", auth / name).stdout.strip() == name.split(".")[0], name
    assert "OK" in openssl("verify", "-CApath", auth, auth / "leaf03-4.crt").stdout
    same = openssl("x509", "-hash", "-noout", "-in", auth / "same0.crt").stdout.strip()
    assert [made.get(f"{same}.{n}") for n in range(4)] == ["same0.crt", "same1.crt", "same2.crt", None]
    codes = {f["code"] for f in report["findings"]}
    assert {"untrusted", "duplicate-alias", "duplicate-certificate", "no-hash-link"} <= codes, codes


@pytest.fixture(scope="module")
def serial(template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("serial") / "n"
    report, forks = build(template, dest, SSLRECONCILER_WORKERS="1")
    assert forks == 0, "SSLRECONCILER_WORKERS=1 forked"
    check_with_openssl(dest, report)
    return dest, report


def cores() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.skipif(cores() < 2, reason="one usable core: the build is serial anyway")
def test_a_parallel_cold_build_is_the_serial_one(serial: tuple[Path, dict], template: Path, tmp_path: Path) -> None:
    report, forks = build(template, tmp_path / "p")
    assert forks >= 2, "the cold build used no worker process"
    same_build(serial[0], tmp_path / "p", serial[1], report)


@pytest.mark.skipif(cores() < 2, reason="one usable core: the build is serial anyway")
def test_a_worker_killed_mid_build_still_gives_the_right_stores(
    serial: tuple[Path, dict], template: Path, tmp_path: Path
) -> None:
    for attempt in range(3):  # the pool's feeder may or may not write into the dead worker's pipe: three tries
        report, forks = build(template, tmp_path / f"k{attempt}", KILL_FIRST_WORKER="1")
        assert forks >= 2
        same_build(serial[0], tmp_path / f"k{attempt}", serial[1], report)
        assert not list((tmp_path / f"k{attempt}" / "ssl").glob(".sslreconciler-*")), "a temp file was left"


def test_with_another_thread_alive_signatures_are_checked_on_threads(
    serial: tuple[Path, dict], template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's case (watchdog, the hook worker): no fork while another thread runs; the self-signature
    checks go to a thread pool (they release the GIL) and the build is still the serial one."""
    import sslreconciler.reconcile.parallel as parallel

    where: set[tuple[str, int]] = set()
    run_chunk = parallel._run_chunk

    def spy(fn, chunk):  # type: ignore[no-untyped-def]
        where.add((threading.current_thread().name, os.getpid()))
        return run_chunk(fn, chunk)

    monkeypatch.setattr(parallel, "_run_chunk", spy)
    dest = tmp_path / "t"
    shutil.copytree(template, dest, symlinks=True)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        result = run_cli("reconcile", "--ssl-dir", dest / "ssl", "--desired-state", dest / "desired-state.json",
                         "--state-dir", dest / "state", "--json")
    finally:
        stop.set()
        other.join(timeout=30)
    assert result.rc in (0, 1), result.out + result.err
    assert all(pid == os.getpid() for _, pid in where), where  # no worker process while another thread runs
    same_build(serial[0], dest, serial[1], json.loads(result.out.replace(str(dest), "ROOT")))
