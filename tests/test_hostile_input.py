"""Input the daemon must expect never stops, stalls or bloats it; bundles and config that would
destroy or expose a key are refused before anything is written.

Each daemon test plants the input, then checks the daemon is alive and answering, and that a finding
names the file and the cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemonkit import RunningDaemon, fingerprint
from tarkit import members_of, tgz
from userkit import as_user, chown_tree, outside_secret, run_as, state_of

from conftest import run_cli, snapshot
from pkitools import Issued, make_host, seed_node, write

HOST = "master.example.com"


def _findings(doc: dict, code: str | None = None, file: str | None = None) -> list[dict]:
    return [f for f in doc.get("findings", []) if (code is None or f["code"] == code)
            and (file is None or f["file"] == file)]


@pytest.fixture
def daemon(world: Path, ca: Issued, service_user: pwd.struct_passwd) -> Iterator[RunningDaemon]:
    """The daemon (as root) on an ssl dir the unprivileged user owns; a root-only file beside it that
    must come out of every test untouched."""
    node = seed_node(world / "n", HOST, ca, web=True)
    chown_tree(node.ssl_dir, service_user)
    shadow, _ = outside_secret(world)
    before = state_of(shadow)
    d = RunningDaemon(node, world / "d", settings="grace_period = 0")
    yield d
    d.close()
    assert state_of(shadow) == before, "a file outside the ssl dir was changed"


def _alive(d: RunningDaemon) -> dict:
    assert d.proc is not None and d.proc.poll() is None, d.logs_text()
    code, doc = d.health()
    assert code in (200, 503)
    return doc


def test_file_name_that_is_not_utf8_is_a_finding(daemon: RunningDaemon, service_user: pwd.struct_passwd) -> None:
    daemon.start()
    auth = os.fsencode(daemon.node.ssl_dir / "authorities")
    bad = auth + b"/bad-\xff\xfe.crt"
    run_as(service_user, f"open({bad!r}, 'wb').write({daemon.node.ca.cert_pem()!r})")
    doc = daemon.wait_for(lambda x: _findings(x, "bad-name"), timeout=60, what="a bad-name finding")
    assert "not UTF-8" in _findings(doc, "bad-name")[0]["reason"]
    assert _findings(doc, "bad-name")[0]["file"] == "authorities/bad-\\xff\\xfe.crt"
    assert doc["artifacts"]["authorities.jks"]["status"] in ("ok", "degraded")
    daemon.send(signal.SIGHUP)  # and again from the start: no crash loop
    daemon.wait_message("READY=1", timeout=60, after=len(daemon.messages))
    _alive(daemon)


def test_quadratic_pem_input_is_refused_without_stalling(daemon: RunningDaemon,
                                                         service_user: pwd.struct_passwd) -> None:
    daemon.start()
    run_as(service_user, f"""
hostile = b"-----BEGIN CERTIFICATE-----\\n" * (1024 * 1024 // 28)
hostile += b"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END X509 CRL-----\\n" * 100
open({str(daemon.node.ssl_dir / "authorities" / "begins.crt")!r}, "wb").write(hostile[: 1024 * 1024 - 1])
""")
    doc = daemon.wait_for(lambda x: _findings(x, file="authorities/begins.crt"), timeout=60,
                          what="a finding for the hostile file")
    assert _findings(doc, file="authorities/begins.crt")[0]["code"] in ("garbage", "no-certificate")
    _alive(daemon)


def test_hash_link_that_cannot_be_made_is_a_finding_not_a_crash(world: Path, ca: Issued, service_user) -> None:
    node = seed_node(world / "n", HOST, ca)
    chown_tree(node.ssl_dir, service_user)
    os.chown(node.ssl_dir / "authorities", 0, 0)  # the daemon's user cannot add links there: EACCES
    work = world / "d"
    d = RunningDaemon(node, work, wrapper=as_user(service_user))
    chown_tree(work, service_user)
    chown_tree(d.sockdir, service_user)
    try:
        d.start()
        doc = d.wait_for(lambda x: _findings(x, "link-failed"), timeout=60, what="a link-failed finding")
        failed = _findings(doc, "link-failed")[0]
        assert failed["file"].startswith("authorities/") and "Permission denied" in failed["reason"]
        assert doc["artifacts"]["ssl.keystore"]["status"] == "ok"
        _alive(d)
    finally:
        d.close()


def test_hook_with_a_nul_byte_is_refused_at_load_and_the_others_still_run(daemon: RunningDaemon,
                                                                         tmp_path: Path, ca: Issued) -> None:
    node = daemon.node
    marker = tmp_path / "ran"
    good = {"name": "good", "after": ["ssl-web.keystore"], "command": ["/bin/sh", "-c", f"echo x >> {marker}"]}
    node.desired.write_text(json.dumps({"hostname": HOST, "hooks": [good]}))
    daemon.start()
    bad = {"name": "bad", "after": ["ssl.keystore"], "command": ["/bin/echo", "a\u0000b"]}
    node.desired.write_text(json.dumps({"hostname": HOST, "hooks": [good, bad]}))
    doc = daemon.wait_for(lambda x: _findings(x, "desired-state"), timeout=60, what="the desired state refused")
    assert "NUL" in _findings(doc, "desired-state")[0]["reason"]
    before = daemon.health()[1]["counts"]["hook_runs"].get("good", {}).get("ok", 0)
    new = make_host(ca, HOST)
    write(node.ssl_dir / "ssl-web.key.new", new.key_pem(), 0o600)
    write(node.ssl_dir / "ssl-web.crt.new", new.cert_pem())
    os.rename(node.ssl_dir / "ssl-web.key.new", node.ssl_dir / "ssl-web.key")
    os.rename(node.ssl_dir / "ssl-web.crt.new", node.ssl_dir / "ssl-web.crt")
    daemon.wait_for(lambda x: fingerprint(x) == new.fingerprint(), timeout=60, what="the new web pair")
    daemon.wait_for(lambda x: x["counts"]["hook_runs"].get("good", {}).get("ok", 0) > before, timeout=60,
                    what="the good hook ran after the bad one was refused")
    _alive(daemon)


def test_fifo_at_the_desired_state_path_never_blocks_the_loop(daemon: RunningDaemon) -> None:
    daemon.start()
    desired = daemon.node.desired
    desired.unlink()
    os.mkfifo(desired)
    daemon.send(signal.SIGHUP)
    doc = daemon.wait_for(lambda x: _findings(x, "desired-state"), timeout=60, what="the FIFO refused")
    assert "FIFO" in _findings(doc, "desired-state")[0]["reason"]
    assert _findings(doc, "desired-state")[0]["file"] == str(desired)
    _alive(daemon)
    assert daemon.stop(timeout=30) == 0  # SIGTERM still heard


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_password_file_that_is_not_a_small_file_is_a_finding(world: Path, ca: Issued, kind: str,
                                                             service_user: pwd.struct_passwd) -> None:
    node = seed_node(world / "n", HOST, ca)
    chown_tree(node.ssl_dir, service_user)
    password = node.ssl_dir / "password"  # a place the user may write
    plant = {"fifo": f"import os; os.mkfifo({str(password)!r})",
             "dev-zero": f"import os; os.symlink('/dev/zero', {str(password)!r})",
             "huge": f"open({str(password)!r}, 'wb').write(b'x' * 1024 * 1024)"}[kind]
    run_as(service_user, plant)
    node.desired.write_text(json.dumps({"hostname": HOST, "password": {"file": str(password)}}))
    # Root reads no password from a place another user could write (issue 21): refused unread, no hang.
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json", timeout=120)
    assert result.rc == 1 and "Traceback" not in result.err, result.err
    reasons = [f["reason"] for f in result.json()["findings"] if f["code"] == "password"]
    mine = f"directory {node.ssl_dir} is owned by uid {service_user.pw_uid}"
    assert reasons and all(str(password) in r and mine in r for r in reasons), reasons
    # The user's own run (as the daemon's would be) reads it, and refuses what it is, without blocking.
    state = world / "user-state"
    state.mkdir()
    os.chown(state, service_user.pw_uid, service_user.pw_gid)
    own = subprocess.run(as_user(service_user, sys.executable, "-m", "sslreconciler", "check", "--ssl-dir", node.ssl_dir,
                                 "--desired-state", node.desired, "--state-dir", state, "--json"),
                         capture_output=True, text=True, timeout=120)
    assert own.returncode == 1 and "Traceback" not in own.stderr, own.stdout + own.stderr
    reasons = [f["reason"] for f in json.loads(own.stdout)["findings"] if f["code"] == "password"]
    want = {"fifo": "FIFO", "dev-zero": "device", "huge": "limit"}[kind]
    assert reasons and all(str(password) in r and want in r for r in reasons), reasons


def test_sighup_with_an_unusable_socket_keeps_the_old_server(daemon: RunningDaemon, tmp_path: Path) -> None:
    daemon.start()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    text = daemon.config.read_text().replace(str(daemon.socket), str(blocker / "health.sock"))
    daemon.config.write_text(text)
    seen = len(daemon.messages)
    daemon.send(signal.SIGHUP)
    daemon.wait_message("READY=1", timeout=60, after=seen)
    assert _alive(daemon)["status"] == "ok"
    assert any("cannot serve on the new socket" in str(line.get("event")) for line in daemon.logs())


def test_unknown_owner_in_a_live_edit_is_a_finding_and_the_daemon_stays_up(daemon: RunningDaemon) -> None:
    """Owners are resolved when the node is observed: a user this system lacks is a finding naming the
    desired state, never an exception past the "keep the last valid desired state" logic."""
    daemon.start()
    node = daemon.node
    pid = daemon.proc.pid
    node.desired.write_text(json.dumps({"hostname": HOST, "permissions": {"owner": "no-such-user-sr13"}}))
    doc = daemon.wait_for(lambda x: _findings(x, "unknown-owner"), timeout=60, what="an unknown-owner finding")
    assert doc["status"] == "degraded" and daemon.proc.poll() is None and daemon.proc.pid == pid
    found = _findings(doc, "unknown-owner")[0]
    assert found["file"] == str(node.desired) and "no-such-user-sr13" in found["reason"], found
    node.desired.write_text(json.dumps({"hostname": HOST}))
    daemon.wait_for(lambda x: x["status"] == "ok", timeout=60, what="ok again")


def test_an_exception_inside_a_reconcile_is_a_failed_report_and_releases_the_lock(tmp_path: Path, ca: Issued) -> None:
    """The Reconciler's safety net, in-process with a fault injected into the one step between observe
    and settle: a failed report with an ``internal`` finding, saved, and the writer lock released."""
    from sslreconciler.config.desired import DesiredState
    from sslreconciler.reconcile.reconciler import Reconciler

    node = seed_node(tmp_path / "n", HOST, ca)

    class Broken(Reconciler):
        def _run_at(self, *args: object, **kwargs: object):  # type: ignore[override]
            raise RuntimeError("injected")

    desired = DesiredState.model_validate({"hostname": HOST})
    state = tmp_path / "state"
    outcome = Broken(node.ssl_dir, state, node.desired).run(desired)
    assert outcome.report.status == "failed" and outcome.report.internal_error
    assert [f.code for f in outcome.report.findings] == ["internal"]
    assert json.loads((state / "last-report.json").read_text())["status"] == "failed"
    again = Reconciler(node.ssl_dir, state, node.desired).run(desired)  # the lock went with the descriptor
    assert again.report.status == "ok", again.report.render_text()


def _proc(pid: int) -> tuple[int, int, int]:
    """Open descriptors, threads, resident kB of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))
    return len(os.listdir(f"/proc/{pid}/fd")), threads, rss


def _steady(pid: int) -> tuple[int, int, int]:
    """Descriptors and threads once the request threads of the last health poll have ended."""
    readings = [_proc(pid)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.2)
        readings.append(_proc(pid))
        if len({r[:2] for r in readings[-5:]}) == 1 and len(readings) >= 5:
            break
    return readings[-1]


def _reconciles_in(message: str) -> int:
    found = re.search(r"(\d+) reconciles", message)
    return int(found.group(1)) if found else -1


def _connect(path: Path, deadline: float) -> socket.socket:
    """A connection, retried while the listen backlog is full (connect says EAGAIN at once then)."""
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(str(path))
            return s
        except (BlockingIOError, ConnectionRefusedError):
            s.close()
            assert time.monotonic() < deadline, "the socket stopped accepting connections"
            time.sleep(0.005)


def test_socket_flood_is_bounded_and_reconciling_goes_on(daemon: RunningDaemon, ca: Issued) -> None:
    daemon.start()
    pid = daemon.proc.pid
    daemon.wait_for(lambda x: x["status"] == "ok", timeout=60, what="ok")
    base_fds, base_threads, base_rss = _steady(pid)
    held: list[socket.socket] = []
    flood_end = time.monotonic() + 60  # bounded in time as in count
    try:
        stuffed = 0
        for _ in range(10):  # header-stuffed requests: 6 MB of headers each, lines under 64 KiB
            s = _connect(daemon.socket, flood_end)
            with s:
                with contextlib.suppress(OSError):  # the daemon stops reading at its limit and closes
                    s.sendall(b"GET /health HTTP/1.1\r\n" + (b"X-Stuff: " + b"a" * 60000 + b"\r\n") * 100 + b"\r\n")
                with contextlib.suppress(OSError):
                    stuffed += s.recv(64).startswith(b"HTTP/1.1 431")
        assert stuffed == 10, "header-stuffed requests were not all answered 431"
        while len(held) < 300 and time.monotonic() < flood_end:  # idle connections, far past the cap of 32
            held.append(_connect(daemon.socket, flood_end))
        refused = 0
        for s in held[40:]:
            with contextlib.suppress(OSError):
                refused += s.recv(64).startswith(b"HTTP/1.1 503")
        assert refused > 200, f"only {refused} connections past the cap were turned away"
        during = _proc(pid)
        assert during[0] <= base_fds + 40 and during[1] <= base_threads + 40, (during, base_fds, base_threads)
        # a reconcile succeeds during the flood: a new web pair is picked up (sd_notify says so)
        before = max([_reconciles_in(m) for m in daemon.drain()] or [0])
        new = make_host(ca, HOST)
        write(daemon.node.ssl_dir / "w.key", new.key_pem(), 0o600)
        write(daemon.node.ssl_dir / "w.crt", new.cert_pem())
        os.rename(daemon.node.ssl_dir / "w.key", daemon.node.ssl_dir / "ssl-web.key")
        os.rename(daemon.node.ssl_dir / "w.crt", daemon.node.ssl_dir / "ssl-web.crt")
        while time.monotonic() < flood_end:
            if max([_reconciles_in(m) for m in daemon.drain()] or [0]) > before:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("no reconcile finished during the flood")
        assert daemon.proc.poll() is None
    finally:
        for s in held:
            s.close()
    doc = daemon.wait_for(lambda x: fingerprint(x) == new.fingerprint(), timeout=60, what="the new web pair")
    assert doc["status"] == "ok"
    deadline = time.monotonic() + 60
    now = _proc(pid)
    while time.monotonic() < deadline:
        now = _proc(pid)
        if now[0] <= base_fds + 1 and now[1] <= base_threads + 1 and now[2] <= base_rss + 16 * 1024:
            break
        time.sleep(0.2)
    print(f"flood: before fds={base_fds} threads={base_threads} rss={base_rss}kB; during {during}; after {now}")
    assert now[0] <= base_fds + 1, f"descriptors {now[0]} vs {base_fds} before the flood"
    assert now[1] <= base_threads + 1, f"threads {now[1]} vs {base_threads} before the flood"
    assert now[2] <= base_rss + 16 * 1024, f"RSS {now[2]} kB vs {base_rss} kB before the flood"


def test_core_dumps_are_off(world: Path, ca: Issued, service_user) -> None:
    node = seed_node(world / "n", HOST, ca)
    chown_tree(node.ssl_dir, service_user)
    work = world / "d"
    d = RunningDaemon(node, work, wrapper=as_user(service_user))
    chown_tree(work, service_user)
    chown_tree(d.sockdir, service_user)
    try:
        d.start()
        limits = Path(f"/proc/{d.proc.pid}/limits").read_text()
        assert re.search(r"^Max core file size\s+0\s+0\s", limits, re.M), limits
        # not dumpable: the kernel hands its /proc entries to root, though it runs as the user
        assert Path(f"/proc/{d.proc.pid}/environ").stat().st_uid == 0
        assert Path(f"/proc/{d.proc.pid}/status").read_text().count(f"\t{service_user.pw_uid}\t") >= 1
    finally:
        d.close()
    unit = (Path(__file__).parent.parent / "packaging" / "systemd" / "sslreconciler.service").read_text()
    assert "\nLimitCORE=0\n" in unit


def test_temp_links_left_by_a_kill_are_cleaned(world: Path, ca: Issued, service_user: pwd.struct_passwd) -> None:
    node = seed_node(world / "n", HOST, ca)
    chown_tree(node.ssl_dir, service_user)
    stale = node.ssl_dir / "authorities" / ".sslreconciler-deadbeef.0.0a1b2c3d.tmp"
    run_as(service_user, f"import os; os.symlink('gone.crt', {str(stale)!r})")
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--json")
    assert result.rc == 0, result.out + result.err
    assert not os.path.lexists(stale)


@pytest.mark.parametrize("desired, words", [
    ({"truststore": {"file": "ssl.key"}}, "named like a source"),
    ({"pairs": [{"name": "ssl", "key": "ssl.key", "cert": "ssl.crt", "keystore": "ssl.crt"}],
      "truststore": {"host_pair": None}}, "named like a source"),
    ({"truststore": {"file": "authorities"}}, "named like a source"),
    ({"permissions": {"private_mode": "0666"}}, "private_mode"),
    ({"permissions": {"private_mode": "0660"}}, "private_mode"),
    ({"pairs": [{"name": "a", "key": "a.key", "cert": "a.crt", "keystore": "x.jks"},
                {"name": "b", "key": "b.key", "cert": "b.crt", "keystore": "x.jks"}],
      "truststore": {"host_pair": None}}, "x.jks named twice"),
])
def test_configuration_that_would_expose_or_destroy_a_key_is_refused(tmp_path: Path, ca: Issued, desired: dict,
                                                                     words: str) -> None:
    node = seed_node(tmp_path / "n", HOST, ca)
    node.desired.write_text(json.dumps({"hostname": HOST, **desired}))
    before = snapshot(node.ssl_dir)
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired)
    assert result.rc == 2 and words in result.err and str(node.desired) in result.err, result.err
    assert snapshot(node.ssl_dir) == before


# -- bundles ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("bundles")
    staging = base / "staging"
    for args in (["pki", "init-ca", "--staging", staging, "--name", "ca.cluster"],
                 ["pki", "issue", "--staging", staging, "sec1.example.com"],
                 ["pki", "issue", "--staging", staging, "sec1.example.com", "--web"],
                 ["pki", "bundle", "--staging", staging, "sec1.example.com", "-o", base / "sec1.tgz"]):
        result = run_cli(*args)
        assert result.rc == 0, result.err
    return {"base": base, "staging": staging, "bundle": base / "sec1.tgz", "members": members_of(base / "sec1.tgz")}


def _install(bundle: Path, ssl_dir: Path, desired: Path):
    return run_cli("pki", "install-bundle", bundle, "--ssl-dir", ssl_dir, "--desired-state", desired, timeout=120)


def _target(tmp_path: Path, host: str = "sec1.example.com") -> tuple[Path, Path]:
    desired = tmp_path / "desired.json"
    desired.write_text(json.dumps({"hostname": host}))
    return tmp_path / "ssl", desired


def test_bundle_with_a_huge_extended_header_is_refused_while_streaming(staged: dict, tmp_path: Path) -> None:
    bundle = tmp_path / "pax.tgz"
    bundle.write_bytes(tgz(staged["members"], pax={"comment": "x" * (64 * 1024 * 1024)}))
    assert bundle.stat().st_size < 1024 * 1024
    ssl_dir, desired = _target(tmp_path)
    result = _install(bundle, ssl_dir, desired)
    assert result.rc == 1 and "extended header" in result.err and str(bundle) in result.err, result.err
    assert "MemoryError" not in result.err and not ssl_dir.exists()


def test_bundle_that_unpacks_too_large_or_too_many_is_refused(staged: dict, tmp_path: Path) -> None:
    ssl_dir, desired = _target(tmp_path)
    many = [(tarfile.TarInfo(f"authorities/x{i}.crt"), b"") for i in range(40)]
    bomb = tarfile.TarInfo("ssl.crt")
    bomb.size = 40 * 1024 * 1024
    for name, members, words in (
        ("many.tgz", many, "more than 32 members"),
        ("bomb.tgz", [(bomb, b"\0" * bomb.size)], "bytes"),
    ):
        bundle = tmp_path / name
        bundle.write_bytes(tgz(members))
        result = _install(bundle, ssl_dir, desired)
        assert result.rc == 1 and words in result.err and "Traceback" not in result.err, result.err
        assert not ssl_dir.exists()


def test_bundle_with_half_a_pair_or_for_another_host_is_refused(staged: dict, tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "sec1.example.com", ca, web=True)
    before = snapshot(node.ssl_dir)
    half = [(m, d) for m, d in staged["members"] if m.name != "ssl-web.crt"]
    manifest = json.loads(next(d for m, d in half if m.name == "manifest.json"))
    del manifest["files"]["ssl-web.crt"]
    body = json.dumps(manifest).encode()
    info = tarfile.TarInfo("manifest.json")
    info.size = len(body)
    half = [(info, body) if m.name == "manifest.json" else (m, d) for m, d in half]
    (tmp_path / "half.tgz").write_bytes(tgz(half))
    result = _install(tmp_path / "half.tgz", node.ssl_dir, node.desired)
    assert result.rc == 1 and "holds ssl-web.key but no ssl-web.crt" in result.err, result.err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hostname": "sec9.example.com"}))
    result = _install(staged["bundle"], node.ssl_dir, other)
    assert result.rc == 1 and "made for sec1.example.com" in result.err and "sec9" in result.err, result.err
    assert snapshot(node.ssl_dir) == before


def test_bundle_write_error_leaves_the_node_exactly_as_it_was(staged: dict, world: Path,
                                                              service_user: pwd.struct_passwd) -> None:
    tmp_path = world
    ssl_dir, desired = _target(tmp_path)
    first = _install(staged["bundle"], ssl_dir, desired)
    assert first.rc == 0, first.err
    chown_tree(ssl_dir, service_user)
    renewed = tmp_path / "renewed.tgz"
    assert run_cli("pki", "issue", "--staging", staged["staging"], "sec1.example.com", "--renew").rc == 0
    assert run_cli("pki", "issue", "--staging", staged["staging"], "sec1.example.com", "--web", "--renew").rc == 0
    assert run_cli("pki", "bundle", "--staging", staged["staging"], "sec1.example.com", "-o", renewed).rc == 0
    # ssl.key is swapped in first; ssl-web.crt cannot be (a directory is in its way): all is put back
    run_as(service_user, f"""
import os
p = {str(ssl_dir / "ssl-web.crt")!r}
os.unlink(p)
os.mkdir(p)
open(p + "/keep", "w").write("x")
""")
    before = snapshot(ssl_dir)
    result = _install(renewed, ssl_dir, desired)
    assert result.rc == 1 and "ssl-web.crt" in result.err and "every file as it was" in result.err, result.err
    assert "Traceback" not in result.err
    assert snapshot(ssl_dir) == before
    assert not [p for p in ssl_dir.rglob(".sslreconciler-*")]
    # once the way is clear it installs, keeping what it replaced
    import shutil

    shutil.rmtree(ssl_dir / "ssl-web.crt")
    old_key = (ssl_dir / "ssl.key").read_bytes()
    result = _install(renewed, ssl_dir, desired)
    assert result.rc == 0, result.err
    assert (ssl_dir / "ssl.key.bundle-previous").read_bytes() == old_key
    assert (ssl_dir / "ssl.key").stat().st_uid == service_user.pw_uid  # the service can still read it
    assert (ssl_dir / "ssl.key").read_bytes() != old_key


def test_file_names_cannot_write_control_sequences_to_roots_terminal(world: Path, ca: Issued) -> None:
    """A trust file named with an escape sequence or a newline is reported, but what reaches the terminal
    shows those characters escaped: a name cannot erase or forge a line of root's report."""
    node = seed_node(world / "n", HOST, ca)
    write(node.ssl_dir / "authorities" / "esc\x1b[2Kx.crt", b"not a certificate")
    write(node.ssl_dir / "authorities" / "new\nline.crt", b"not a certificate either")
    result = run_cli("reconcile", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired,
                     "--state-dir", world / "state")
    assert "\x1b" not in result.out and "\\x1b[2Kx.crt" in result.out, result.out
    assert "new\\nline.crt" in result.out and not any(line.startswith("line.crt") for line in result.out.splitlines())
