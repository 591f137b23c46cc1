"""The real daemon as a subprocess: swaps, breakage, reloads, signals, sd_notify, hooks, idling."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonkit import RunningDaemon, fingerprint, http_get, wait_until

from conftest import keytool_list, run_cli, snapshot
from pkitools import Issued, make_host, seed_node, write


@pytest.fixture
def daemon(tmp_path: Path, ca: Issued):
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    d = RunningDaemon(node, tmp_path / "d", settings="grace_period = 2.0")
    yield d
    d.close()


def _swap_by_rename(node, new) -> None:
    staging = node.ssl_dir / ".staging"
    staging.mkdir(exist_ok=True)
    write(staging / "k", new.key_pem(), 0o600)
    write(staging / "c", new.cert_pem())
    os.rename(staging / "k", node.ssl_dir / "ssl-web.key")
    os.rename(staging / "c", node.ssl_dir / "ssl-web.crt")


def test_start_ready_and_health(daemon) -> None:
    daemon.start()
    assert daemon.socket.exists()  # READY=1 came with the socket up
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o660
    code, doc = daemon.health()
    assert code == 200 and doc["status"] == "ok"
    pem = {f"live/{p}.{s}" for p in ("ssl", "ssl-web") for s in ("key", "crt", "fullchain.pem", "chain.pem")}
    assert set(doc["artifacts"]) == {
        "ssl.keystore", "ssl.p12", "ssl-web.keystore", "ssl-web.p12", "authorities.jks", "authorities.pem", *pem}
    cert = doc["artifacts"]["ssl-web.keystore"]["certificate"]
    assert set(cert) == {"subject", "issuer", "serial", "not_after", "fingerprint_sha256", "subject_cn", "issuer_cn"}
    assert cert["fingerprint_sha256"] == daemon.node.web.fingerprint()
    assert doc["counts"]["reconciles"] == 1 and doc["last_reconcile"]["trigger"] == "start"
    status = [m for m in daemon.drain() if m.startswith("STATUS=")]
    assert status and status[-1].startswith("STATUS=ok: 14 artifacts")  # 5 stores, the CA bundle, 8 PEM files
    # curl, as the README says
    curl = subprocess.run(["curl", "-s", "--unix-socket", str(daemon.socket), "http://localhost/health"],
                          capture_output=True, text=True, timeout=30)
    assert json.loads(curl.stdout)["status"] == "ok"
    metrics = http_get(daemon.socket, "/metrics")[1].decode()
    assert "x509_cert_not_after{filepath=\"ssl-web.keystore\"" in metrics
    assert "sslreconciler_reconciles_total 1" in metrics
    assert 'sslreconciler_artifact_status{artifact="ssl.p12",status="ok"} 1' in metrics
    assert http_get(daemon.socket, "/nope")[0] == 404


def test_swap_by_rename_is_picked_up(daemon, ca: Issued) -> None:
    daemon.start()
    new = make_host(ca, "master.example.com")
    before = snapshot(daemon.node.ssl_dir)
    _swap_by_rename(daemon.node, new)
    doc = daemon.wait_for(lambda d: fingerprint(d) == new.fingerprint(), what="new web cert")
    assert doc["status"] == "ok"
    assert fingerprint(doc, "ssl-web.p12") == new.fingerprint()
    after = snapshot(daemon.node.ssl_dir)
    for name in ("ssl.keystore", "ssl.p12", "authorities.jks"):  # only what changed is rebuilt
        assert after[name] == before[name], name
    dump = subprocess.run(["keytool", "-list", "-rfc", "-keystore", str(daemon.node.ssl_dir / "ssl-web.keystore"),
                           "-storepass", "changeit"], capture_output=True, text=True, timeout=60).stdout
    assert new.cert_pem().decode().split("\n")[1] in dump
    changed = [line for line in daemon.logs() if line.get("event") == "reconciled: stores rewritten"]
    assert changed and {c["artifact"] for c in changed[-1]["changes"]} == {  # the chain file stays empty
        "ssl-web.keystore", "ssl-web.p12", "live/ssl-web.key", "live/ssl-web.crt", "live/ssl-web.fullchain.pem"}
    assert "serial" in changed[-1]["changes"][0]["old"] and "serial" in changed[-1]["changes"][0]["new"]


def test_slow_non_atomic_copy_never_flaps(daemon, ca: Issued) -> None:
    daemon.start()
    new = make_host(ca, "master.example.com")
    codes = []
    for target, data in ((daemon.node.ssl_dir / "ssl-web.key", new.key_pem()),
                         (daemon.node.ssl_dir / "ssl-web.crt", new.cert_pem())):
        with target.open("wb") as fh:  # truncate, then dribble the bytes in, slower than the quiet period
            for i in range(0, len(data), 400):
                fh.write(data[i:i + 400])
                fh.flush()
                time.sleep(0.3)
                codes.append(daemon.health()[0])
    doc = daemon.wait_for(lambda d: fingerprint(d) == new.fingerprint(), what="new web cert after slow copy")
    assert doc["status"] == "ok"
    assert set(codes) == {200}, codes  # pending at worst, never 503
    assert any(e.get("event", "").startswith("finding (pending") for e in daemon.logs())


def test_broken_key_degrades_keeps_store_then_recovers(daemon, ca: Issued) -> None:
    daemon.start()
    web_before = snapshot(daemon.node.ssl_dir)["ssl-web.keystore"]
    (daemon.node.ssl_dir / "ssl-web.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    doc = daemon.wait_for(lambda d: d["status"] == "pending", what="pending within the grace window")
    assert doc["artifacts"]["ssl-web.keystore"]["status"] == "pending"
    doc = daemon.wait_for(lambda d: d["status"] == "degraded", what="degraded after the grace window")
    assert daemon.health()[0] == 503
    assert doc["artifacts"]["ssl-web.keystore"]["action"] == "kept-last-good"
    assert fingerprint(doc) == daemon.node.web.fingerprint()
    assert snapshot(daemon.node.ssl_dir)["ssl-web.keystore"] == web_before
    status = run_cli("status", "--socket", daemon.socket)
    first = status.out.splitlines()[0]
    assert status.rc == 2 and first.startswith("SSLRECONCILER CRITICAL - ssl-web.key: ") and "; degraded: " in first
    assert "ssl-web.key" in status.out
    # recover
    write(daemon.node.ssl_dir / "ssl-web.key", daemon.node.web.key_pem(), 0o600)
    daemon.wait_for(lambda d: d["status"] == "ok", what="recovery")
    assert run_cli("status", "--socket", daemon.socket).rc == 0
    assert any(e.get("event") == "finding cleared" for e in daemon.logs())


def test_desired_state_edit_and_sighup(daemon) -> None:
    daemon.start()
    before = snapshot(daemon.node.ssl_dir)
    daemon.node.desired.write_text(json.dumps({"hostname": daemon.node.host, "pkcs12_profile": "legacy"}))
    daemon.wait_for(lambda d: "should be legacy" in d["artifacts"]["ssl.p12"]["message"],
                    what="p12 rewritten for the legacy profile")
    after = snapshot(daemon.node.ssl_dir)
    assert after["ssl.p12"] != before["ssl.p12"] and after["ssl.keystore"] == before["ssl.keystore"]
    # an invalid edit: the last valid desired state is kept, and the status says so
    daemon.node.desired.write_text('{"pkcs12_profile": "bogus"}')
    doc = daemon.wait_for(lambda d: d["desired_state"]["problem"] is not None, what="invalid desired state noticed")
    assert doc["status"] == "degraded" and "pkcs12_profile" in doc["desired_state"]["problem"]
    assert snapshot(daemon.node.ssl_dir)["ssl.p12"] == after["ssl.p12"]
    daemon.node.desired.write_text(json.dumps({"hostname": daemon.node.host, "pkcs12_profile": "legacy"}))
    daemon.wait_for(lambda d: d["status"] == "ok", what="valid again")
    count = daemon.reconciles()
    seen = len(daemon.drain())
    daemon.send(signal.SIGHUP)
    reloading = daemon.wait_message("RELOADING=1", after=seen)
    assert any(line.startswith("MONOTONIC_USEC=") for line in reloading.splitlines())
    daemon.wait_message("READY=1", after=seen + 1)
    doc = daemon.wait_for(lambda d: d["counts"]["reconciles"] == count + 1, what="reconcile after SIGHUP")
    assert doc["last_reconcile"]["trigger"] == "reload (SIGHUP)"


def test_sigterm_exits_zero_quickly_and_removes_socket(daemon) -> None:
    daemon.start()
    daemon.send(signal.SIGTERM)
    # exits by itself with 0 (no kill needed); how fast is a benchmark matter, not a test's
    assert daemon.proc.wait(timeout=60) == 0
    assert not daemon.socket.exists()
    daemon.wait_message("STOPPING=1")
    assert run_cli("status", "--socket", daemon.socket).rc == 3


def _settled_reconcile_count(daemon: RunningDaemon, still_for: float = 2.0) -> int:
    """The reconcile count once it has held still for ``still_for`` seconds (quiet period is 0.2 s)."""
    seen = [daemon.reconciles(), time.monotonic()]

    def settled() -> bool:
        now = daemon.reconciles()
        if now != seen[0]:
            seen[:] = [now, time.monotonic()]
        return time.monotonic() - seen[1] >= still_for

    wait_until(settled, what="the reconcile count to settle")
    return seen[0]


def test_idle_daemon_stays_idle(daemon, ca: Issued) -> None:
    daemon.start()
    new = make_host(ca, "master.example.com")
    _swap_by_rename(daemon.node, new)  # causes writes of its own
    daemon.wait_for(lambda d: fingerprint(d) == new.fingerprint(), what="the swap reconciled")
    count = _settled_reconcile_count(daemon)
    (daemon.node.ssl_dir / "notes.swap").write_text("admin scratch")  # unrelated files
    (daemon.node.ssl_dir / "ssl-web.crt~").write_text("editor backup")
    (daemon.node.ssl_dir / "authorities" / ".hidden").write_text("x")
    os.chmod(daemon.node.ssl_dir / "ssl.p12", 0o600)
    time.sleep(3.0)  # a window in which nothing may happen: an absence needs one, and load only widens it
    assert daemon.reconciles() == count


def test_starts_over_a_stale_socket_and_refuses_a_live_one(daemon, tmp_path: Path) -> None:
    daemon.socket.parent.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(daemon.socket))
    stale.close()  # a killed daemon leaves exactly this behind
    assert stat.S_ISSOCK(daemon.socket.lstat().st_mode)
    daemon.start()
    assert daemon.health()[0] == 200
    second = subprocess.run([sys.executable, "-m", "sslreconciler", "run", "--config", str(daemon.config)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "another daemon is answering" in second.stdout + second.stderr
    assert daemon.health()[0] == 200


def test_a_full_notify_socket_never_stalls_the_notifier(tmp_path: Path) -> None:
    """systemd slow to read $NOTIFY_SOCKET: messages past its queue (net.unix.max_dgram_qlen, 10 by
    default) are dropped, never waited for (a blocking sendto stalled the daemon's loop)."""
    import socket as socketlib
    import threading

    from sslreconciler.daemon.sdnotify import Notifier

    path = tmp_path / "notify.sock"
    unread = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    unread.bind(str(path))
    notifier = Notifier(str(path))
    sent: list[int] = []
    sender = threading.Thread(target=lambda: [sent.append(notifier.send(f"STATUS={i}") or i) for i in range(200)],
                              daemon=True)
    try:
        sender.start()
        sender.join(60)
        assert not sender.is_alive() and len(sent) == 200, f"blocked after {len(sent)} messages"
        assert unread.recv(64) == b"STATUS=0"  # the first ones arrived; the ones past the queue were dropped
    finally:
        notifier.close()
        unread.close()


def test_watchdog_pings(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    d = RunningDaemon(node, tmp_path / "d", env={"WATCHDOG_USEC": "200000"})
    try:
        d.start()
        wait_until(lambda: sum(m == "WATCHDOG=1" for m in d.drain()) >= 5, what="five WATCHDOG=1 pings")
    finally:
        d.close()


def test_hooks_run_fail_and_time_out_without_blocking(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    marker = tmp_path / "reloaded"
    node.desired.write_text(json.dumps({"hostname": node.host, "hooks": [
        {"name": "reload", "after": ["ssl-web.keystore"],
         "command": [sys.executable, "-c", f"import os; open({str(marker)!r}, 'a').write(os.environ['SSLRECONCILER_CHANGED'] + '\\n')"]},
        {"name": "broken", "after": ["ssl-web.p12"], "command": ["/bin/false"]},
        {"name": "hang", "after": ["ssl.keystore"], "command": ["sleep", "60"], "timeout": 1},
    ]}))
    d = RunningDaemon(node, tmp_path / "d")
    try:
        d.start()
        doc = d.wait_for(lambda x: set(x["hooks"]) == {"reload", "broken", "hang"}
                         and "never-run" not in {h["outcome"] for h in x["hooks"].values()}, timeout=30,
                         what="all hooks ran")
        assert doc["hooks"]["reload"]["outcome"] == "ok"
        assert doc["hooks"]["broken"]["outcome"] == "failed" and doc["hooks"]["broken"]["exit_code"] == 1
        assert doc["hooks"]["hang"]["outcome"] == "timeout"
        assert doc["status"] == "warning"  # the stores are fine; a service may not have reloaded
        assert marker.read_text().split() == ["ssl-web.keystore"]
        assert keytool_list(node.ssl_dir / "ssl.keystore")  # the artifact a hanging hook followed is in place
        metrics = http_get(d.socket, "/metrics")[1].decode()
        assert 'sslreconciler_hook_runs_total{hook="hang",outcome="timeout"} 1' in metrics
        # a new web cert while nothing hangs: the reload hook runs again
        new = make_host(ca, "master.example.com")
        _swap_by_rename(node, new)
        d.wait_for(lambda x: fingerprint(x) == new.fingerprint(), what="swap")
        d.wait_for(lambda x: x["counts"]["hook_runs"]["reload"]["ok"] == 2, what="second reload hook")
    finally:
        d.close()


def test_ssl_dir_removed_and_recreated(daemon, tmp_path: Path, ca: Issued) -> None:
    daemon.start()
    moved = tmp_path / "moved-away"
    os.rename(daemon.node.ssl_dir, moved)
    daemon.wait_for(lambda d: d["status"] == "degraded", what="ssl dir gone")
    new = make_host(ca, "master.example.com")
    os.rename(moved, daemon.node.ssl_dir)
    time.sleep(0.5)
    _swap_by_rename(daemon.node, new)
    daemon.wait_for(lambda d: fingerprint(d) == new.fingerprint(), what="swap in the recreated dir")


def test_kubernetes_data_swap(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", "master.example.com", ca)
    first = make_host(ca, "master.example.com")
    for name, gen in (("..2026_a", first),):
        write(node.ssl_dir / name / "ssl-web.key", gen.key_pem(), 0o600)
        write(node.ssl_dir / name / "ssl-web.crt", gen.cert_pem())
    os.symlink("..2026_a", node.ssl_dir / "..data")
    os.symlink("..data/ssl-web.key", node.ssl_dir / "ssl-web.key")
    os.symlink("..data/ssl-web.crt", node.ssl_dir / "ssl-web.crt")
    d = RunningDaemon(node, tmp_path / "d")
    try:
        d.start()
        assert fingerprint(d.health()[1]) == first.fingerprint()
        second = make_host(ca, "master.example.com")
        write(node.ssl_dir / "..2026_b" / "ssl-web.key", second.key_pem(), 0o600)
        write(node.ssl_dir / "..2026_b" / "ssl-web.crt", second.cert_pem())
        os.symlink("..2026_b", node.ssl_dir / "..data_tmp")
        os.rename(node.ssl_dir / "..data_tmp", node.ssl_dir / "..data")
        d.wait_for(lambda x: fingerprint(x) == second.fingerprint(), what="..data swap")
    finally:
        d.close()


def test_status_without_daemon_is_unknown(tmp_path: Path) -> None:
    result = run_cli("status", "--socket", tmp_path / "none.sock")
    assert result.rc == 3 and result.out.startswith("SSLRECONCILER UNKNOWN")
    result = run_cli("status", "--socket", tmp_path / "none.sock", "--json")
    assert result.rc == 3 and json.loads(result.out)["status"] == "unknown"


def test_status_with_a_socket_reads_no_settings_and_refuses_a_non_http_answer(tmp_path: Path) -> None:
    """--socket (or $SSLRECONCILER_SOCKET) wins over any settings, so a broken settings file does not
    stop a monitoring check; a listener that does not speak HTTP is UNKNOWN, never a traceback."""
    broken = tmp_path / "broken.toml"
    broken.write_text("this is [not toml")
    path = tmp_path / "other.sock"
    server = _fake_server(path, b"SSH-2.0-OpenSSH\r\n\r\n{}", answers=2)
    try:
        result = run_cli("status", "--config", broken, "--socket", path)
        assert result.rc == 3 and "not an HTTP answer" in result.out, result.out + result.err
        env = {"SSLRECONCILER_SOCKET": str(path)}
        result = run_cli("status", "--config", broken, "--json", env=env)
        assert result.rc == 3 and json.loads(result.out)["reason"] == "not an HTTP answer", result.out
        result = run_cli("status", "--config", broken)  # no socket given: the settings are read, and refused
        assert result.rc == 3 and "config error" in result.err, result.err
    finally:
        server.close()


@pytest.mark.parametrize("body", [b"[" * 200_000, b"[1]", b'{"status": "ok", "artifacts": {"x": {}}}',
                                  b'{"status": "ok", "findings": [7]}', b'"ok"'],
                         ids=["deep", "list", "artifact-without-status", "finding-not-object", "string"])
def test_status_says_unknown_for_any_malformed_document(tmp_path: Path, body: bytes) -> None:
    """Whoever can bind the socket path answers root's `status`: a document of the wrong shape is UNKNOWN
    with a reason, never a traceback (which monitoring would read as WARNING)."""
    path = tmp_path / "fake.sock"
    server = _fake_server(path, b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + body, answers=2)
    try:
        text = run_cli("status", "--socket", path)
        assert text.rc == 3 and "Traceback" not in text.err and text.out.startswith("SSLRECONCILER UNKNOWN"), (
            text.out + text.err)
        as_json = run_cli("status", "--socket", path, "--json")  # an object is passed through as it came
        assert "Traceback" not in as_json.err, as_json.err
        if body.startswith(b"{"):  # its own status (ok) is its exit code: 0, the document unchanged
            assert as_json.rc == 0 and json.loads(as_json.out) == json.loads(body), as_json.out + as_json.err
        else:
            assert as_json.rc == 3 and json.loads(as_json.out)["status"] == "unknown", as_json.out
    finally:
        server.close()


def _fake_server(path: Path, reply: bytes, answers: int):
    """Something else bound to the socket path: it reads a request and sends ``reply``, ``answers`` times."""
    import socket as socketlib
    import threading

    server = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)

    def answer() -> None:
        for _ in range(answers):
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(reply)

    threading.Thread(target=answer, daemon=True).start()
    return server
