"""ACME against what an attacker controls: a lying or hanging ACME server, stray clients on the
standalone listener, a service user who owns the state dir root renews in, a malformed record.

The lying server is acmekit.FakeAcme (pebble cannot be made to lie); the honest one is pebble.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from acmekit import FakeAcme, Pebble, StrayClient, WebrootServer, acme_block, free_port, run_measured
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from daemonkit import RunningDaemon
from userkit import as_user, chown_tree

from conftest import run_cli, snapshot
from pkitools import Issued, Node, seed_node, write

HOST = "pbx.example.com"
EVIL = "evil.example.org"


@pytest.fixture
def fakes(tmp_path: Path):
    started: list[FakeAcme] = []

    def start(**lies) -> FakeAcme:
        fake = FakeAcme(tmp_path / f"fake{len(started)}", **lies)
        started.append(fake)
        return fake.start()

    yield start
    for fake in started:
        fake.stop()


def set_acme(node: Node, block: dict, **top) -> None:
    node.desired.write_text(json.dumps({"hostname": node.host, "acme": block, **top}))


def fake_block(fake: FakeAcme, tmp_path: Path, **extra) -> dict:
    return {"directory": fake.directory, "names": [HOST], "challenge": {"webroot": str(tmp_path / "www")},
            "ca_bundle": str(fake.ca_bundle), **extra}


def acme_cmd(node: Node, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "sslreconciler", "acme", *map(str, args), "--ssl-dir", str(node.ssl_dir),
            "--desired-state", str(node.desired)]


def acme(node: Node, *args: str | Path, timeout: float = 300):
    return run_cli("acme", *args, "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, timeout=timeout)


def record(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "state" / "acme.json").read_text())


def installed_leaf(node: Node) -> x509.Certificate:
    return x509.load_pem_x509_certificates((node.ssl_dir / "ssl-web.crt").read_bytes())[0]


# -- item 11: a lying server ---------------------------------------------------------------------------


def test_an_honest_fake_server_gets_its_certificate_installed(tmp_path: Path, ca: Issued, fakes) -> None:
    """The control for the lies below: the fake speaks enough ACME for a certificate to be installed."""
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes()
    set_acme(node, fake_block(fake, tmp_path))
    done = acme(node, "renew")
    assert done.rc == 0, done.out + done.err
    assert installed_leaf(node) == fake.issued[-1]


def test_a_certificate_for_other_names_is_refused(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(names=[EVIL])
    set_acme(node, fake_block(fake, tmp_path))
    before = snapshot(node.ssl_dir)
    refused = acme(node, "renew")
    assert refused.rc == 1, refused.out + refused.err
    assert fake.issued, "the fake never signed: the test did not reach the download"
    assert f"does not cover {HOST}" in refused.out and EVIL in refused.out, refused.out
    assert snapshot(node.ssl_dir) == before
    rec = record(tmp_path)
    assert rec["last_result"] == "failed" and rec["issued_fingerprint"] is None


def test_an_intermediate_that_is_not_a_ca_is_refused(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(intermediate_is_ca=False)
    set_acme(node, fake_block(fake, tmp_path))
    before = snapshot(node.ssl_dir)
    refused = acme(node, "renew")
    assert refused.rc == 1, refused.out + refused.err
    assert fake.issued and "not a CA" in refused.out, refused.out
    assert snapshot(node.ssl_dir) == before


def test_a_huge_download_is_cut_at_the_bound_and_never_written(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(download_bytes=64 << 20)
    set_acme(node, fake_block(fake, tmp_path))
    before = snapshot(node.ssl_dir)
    rc, out, err, seconds, rss_kib = run_measured(acme_cmd(node, "renew"), timeout=300)
    print(f"64 MiB download: {seconds:.1f} s, peak RSS {rss_kib / 1024:.0f} MiB")
    assert rc == 1, out + err
    assert fake.issued and "limit" in out and "Traceback" not in out + err, out + err
    assert rss_kib < 120 * 1024, f"peak RSS {rss_kib} KiB for a 64 MiB answer"
    assert snapshot(node.ssl_dir) == before
    state = tmp_path / "state"
    assert sum(p.lstat().st_size for p in state.rglob("*")) < 64 * 1024, list(state.rglob("*"))


def test_a_download_that_breaks_off_is_a_connection_failure(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(download_bytes=200_000, download_cut=True)
    set_acme(node, fake_block(fake, tmp_path))
    before = snapshot(node.ssl_dir)
    cut = acme(node, "renew")
    assert cut.rc == 1 and "ACME connection" in cut.out and "broke off" in cut.out, cut.out + cut.err
    assert "Traceback" not in cut.out + cut.err and snapshot(node.ssl_dir) == before


def test_http_resources_in_an_https_directory_are_refused_before_anything_is_sent(
        tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(plain_resources=True)
    set_acme(node, fake_block(fake, tmp_path))
    refused = acme(node, "renew")
    assert refused.rc == 1, refused.out + refused.err
    assert "http://127.0.0.1" in refused.out and "https" in refused.out, refused.out
    assert fake.plain_requests == [], fake.plain_requests  # not one request in clear


def test_the_installed_leaf_is_recorded_whatever_the_chain_order(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(chain_order="reversed")
    set_acme(node, fake_block(fake, tmp_path, drop_in="replace"))
    done = acme(node, "renew", "--json")
    assert done.rc == 0, done.out + done.err
    leaf = fake.issued[-1]
    assert installed_leaf(node) == leaf
    rec = record(tmp_path)
    assert rec["issued_fingerprint"] == leaf.fingerprint(hashes.SHA256()).hex()
    assert rec["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    again = acme(node, "renew")  # drop_in replace: a certificate of its own is not re-ordered
    assert again.rc == 0 and "nothing to do" in again.out, again.out + again.err
    assert len(fake.issued) == 1


# -- item 15: what the server says reaches the terminal escaped; no traceback for a bad EAB key --------


def test_a_problem_detail_with_control_characters_is_escaped(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes(problem_detail="no\x1b]0;owned\x07 account\x1b[2J\r\x9b here")
    set_acme(node, fake_block(fake, tmp_path))
    refused = acme(node, "renew")
    status = acme(node, "status")
    for result in (refused, status):
        shown = result.out + result.err
        assert "account" in shown and not any(c in shown for c in "\x1b\x07\r\x9b"), repr(shown)
    assert refused.rc == 1 and "\\x1b" in refused.out, refused.out


def test_a_malformed_eab_key_is_a_config_error_without_the_key(tmp_path: Path, ca: Issued, fakes) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    fake = fakes()
    for secret in ("sEcReTkEy", "sEcReT*kEy!"):  # a length base64 cannot have; a character it has not
        set_acme(node, fake_block(fake, tmp_path, eab={"kid": "kid-1", "hmac_key": {"value": secret}}))
        bad = acme(node, "renew", "--force")
        assert bad.rc == 2, bad.out + bad.err
        assert "Traceback" not in bad.out + bad.err and "acme.eab.hmac_key" in bad.err, bad.err
        assert "sEcReT" not in bad.out + bad.err and "kEy" not in bad.out + bad.err
    # A well-formed key (the fake ignores it): the run works, and neither secret shows anywhere.
    hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    set_acme(node, fake_block(fake, tmp_path, eab={"kid": "kid-1", "hmac_key": {"value": hmac}}))
    good = acme(node, "renew", "--force", "--json")
    assert good.rc == 0, good.out + good.err
    account = "".join((tmp_path / "state" / "acme-account.key").read_text().splitlines()[1:-1])
    shown = good.out + good.err + acme(node, "status", "--json").out + (tmp_path / "state" / "acme.json").read_text()
    assert hmac not in shown and account[:24] not in shown and account[-24:] not in shown


# -- item 10: a malformed record costs the ACME part of /health, nothing else --------------------------


@pytest.mark.parametrize("bad", [
    {"last_attempt": "2026-01-01T00:00:00Z", "renewal_due": 12345},
    {"last_attempt": "2026-01-01T00:00:00Z", "failures": "many", "names": "pbx", "last_error": ["x"]},
    "deep",
])
def test_a_malformed_acme_record_costs_only_the_acme_part(tmp_path: Path, ca: Issued, bad) -> None:
    node = seed_node(tmp_path / "node", HOST, ca, web=True)
    # the daemon shows the ACME record only while the desired state has an acme block (issue 26)
    node.desired.write_text(json.dumps({"hostname": HOST, "acme": {
        "directory": "https://localhost:9/dir", "names": [HOST], "challenge": {"webroot": str(tmp_path / "www")}}}))
    daemon = RunningDaemon(node, tmp_path / "daemon").start()
    try:
        daemon.wait_for(lambda d: d["status"] == "ok", what="ok at first")
        deep = '{"last_attempt": "2026-01-01T00:00:00Z", "names": ' + "[" * 20_000 + "]" * 20_000 + "}"
        data = deep.encode() if bad == "deep" else json.dumps(bad).encode()  # deep: 40 KB, under the read bound
        write(tmp_path / "state" / "acme.json", data, 0o600)  # the state dir SSLRECONCILER_STATE_DIR names
        (node.ssl_dir / "ssl-web.crt").write_bytes(b"garbage, not a certificate\n")
        doc = daemon.wait_for(lambda d: d["status"] not in ("ok", "warning"), timeout=90,
                              what="/health to show the broken web certificate")
        assert any(f["file"].endswith("ssl-web.crt") for f in doc["findings"]), doc["findings"]
        acme_findings = [f for f in doc["findings"] if f["file"].endswith("acme.json")]
        assert acme_findings and acme_findings[0]["code"] == "acme", doc["findings"]
        assert "acme" not in doc or doc["acme"].get("renewal_due") != 12345
        assert daemon.proc.poll() is None
    finally:
        daemon.close()
    # acme status says the record is ignored, and why, instead of failing on it
    status = acme(node, "status")
    # exit 1: with the record ignored and ssl-web.crt garbage, a renewal is due (docs/acme.md)
    assert status.rc == 1 and "acme.json" in status.out and "ignored" in status.out, status.out + status.err
    assert "Traceback" not in status.out + status.err


# -- item 3: the standalone listener and the whole run are bounded ------------------------------------


@pytest.mark.slow
def test_stray_clients_on_the_standalone_port_do_not_stop_renewal(tmp_path: Path, ca: Issued, pebble: Pebble) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    stray = StrayClient(pebble.http_port, connections=4, every=2.0)
    try:
        set_acme(node, acme_block(pebble, [HOST], {"listen": f"127.0.0.1:{pebble.http_port}"}))
        rc, out, err, seconds, _ = run_measured(acme_cmd(node, "renew"), timeout=240)
        print(f"renewal with {stray.connections} stray clients trickling: {seconds:.1f} s "
              f"({stray.connected} connections made, {stray.cut} cut by the listener)")
    finally:
        stray.stop()
    assert stray.connected >= 1, "the stray client never got in: the test proves nothing"
    assert rc == 0, out + err
    assert record(tmp_path)["last_result"] == "issued"
    assert seconds < 120


@pytest.mark.slow
@pytest.mark.parametrize("how", ["trickling", "silent"])
def test_a_hanging_acme_server_ends_the_run_in_bounded_time(tmp_path: Path, ca: Issued, fakes, how) -> None:
    node = seed_node(tmp_path / "node", HOST, ca)
    limit = 10  # acme.timeout_s: the least the settings accept
    if how == "trickling":  # answers the directory one byte a second, for ever
        fake = fakes(trickle=True)
        block = fake_block(fake, tmp_path, timeout_s=limit)
    else:  # accepts the connection (the kernel does), never says a word
        silent = __import__("socket").socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        fake = fakes()
        block = {**fake_block(fake, tmp_path, timeout_s=limit), "directory": f"https://localhost:{silent.getsockname()[1]}/dir"}
    set_acme(node, block)
    before = snapshot(node.ssl_dir)
    try:
        rc, out, err, seconds, _ = run_measured(acme_cmd(node, "renew"), timeout=240)
    finally:
        if how == "silent":
            silent.close()
    print(f"{how} ACME server: acme renew ended after {seconds:.1f} s")
    assert rc == 1, out + err
    assert seconds < 60, seconds
    assert "ACME timeout" in out and f"{limit} s" in out, out
    rec = record(tmp_path)
    assert rec["last_result"] == "failed" and rec["last_error"]["type"] == "timeout"
    assert snapshot(node.ssl_dir) == before


# -- items 5 and 6: root renewing in the service user's state dir ------------------------------------


SWAPPER = """
import os, sys, time
state, outside, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.monotonic() + seconds
swaps = 0
while time.monotonic() < end:
    try:
        names = os.listdir(state)
    except OSError:
        continue
    for name in names:
        path = os.path.join(state, name)
        if name.startswith(".moved-") or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:  # the work dir root just made: moved away, a link to a directory root must not write in
            os.rename(path, os.path.join(state, ".moved-" + name))
            os.symlink(outside, path)
            swaps += 1
        except OSError:
            pass
print(swaps)
"""


@pytest.mark.slow
def test_root_renewing_in_the_service_state_dir_writes_nothing_outside_and_leaves_it_usable(
        world: Path, ca: Issued, service_user, pebble: Pebble) -> None:
    user = service_user
    node = seed_node(world / "node", HOST, ca)
    chown_tree(node.ssl_dir, user)
    state, webroot, outside = world / "state", world / "www", world / "outside"
    state.mkdir(mode=0o700)
    webroot.mkdir(mode=0o755)
    outside.mkdir(mode=0o755)  # root's: stands for /etc or /root/.ssh
    for d in (state, webroot):
        os.chown(d, user.pw_uid, user.pw_gid)
    ca_bundle = write(world / "pebble-https-ca.pem", pebble.ca_bundle.read_bytes())  # the user reads it too
    server = WebrootServer(webroot, pebble.http_port)
    swapper = subprocess.Popen(as_user(user, sys.executable, "-c", SWAPPER, state, outside, "240"),
                               stdout=subprocess.PIPE, text=True)
    try:
        set_acme(node, acme_block(pebble, [HOST], {"webroot": str(webroot)}, ca_bundle=str(ca_bundle)))
        cmd = ["acme", "renew", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--state-dir", state]
        as_root = run_cli(*cmd, timeout=300)
        swapper.kill()
        swapper.wait()
        assert list(outside.iterdir()) == [], "root wrote through the swapped work dir"
        assert as_root.rc == 0, as_root.out + as_root.err
        # Everything root made in the user's directories is the user's (item 6) ...
        made = [p for p in [*state.rglob("*"), *webroot.rglob("*")] if not p.name.startswith(".moved-")]
        assert {p.name for p in made} >= {"acme-account.key", "acme.json", ".well-known", "acme-challenge"}
        wrong = [(str(p), p.lstat().st_uid) for p in made if p.lstat().st_uid != user.pw_uid]
        assert not wrong, wrong
        assert stat.S_IMODE((state / "acme-account.key").stat().st_mode) == 0o600
        # ... so the service user's own timer run works after root's.
        mine = subprocess.run(as_user(user, sys.executable, "-m", "sslreconciler", *map(str, cmd), "--force"),
                              capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(world)})
        assert mine.returncode == 0, mine.stdout + mine.stderr
        assert "installed" in mine.stdout
    finally:
        if swapper.poll() is None:
            swapper.kill()
        server.stop()


@pytest.mark.slow
def test_the_listener_cuts_every_connection_at_its_deadline_and_survives_a_flood() -> None:
    from sslreconciler.cluster.acme import listener

    port = free_port()
    served = listener.Http01Listener("127.0.0.1", port, {"tok": b"tok.thumb"})
    served.start()
    socket = __import__("socket")
    try:
        flood = []
        for _ in range(listener.MAX_CONNECTIONS + 50):  # past the cap: the oldest are closed for the newest
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /")
            flood.append(s)
        started = time.monotonic()
        trickler = flood[-1]

        def ask() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: x\r\n\r\n")
                return b"".join(iter(lambda: s.recv(4096), b""))

        assert ask().endswith(b"\r\n\r\ntok.thumb")  # answered beside 300 idle connections
        cut = threading.Event()

        def trickle() -> None:
            while time.monotonic() - started < 60:
                try:
                    trickler.sendall(b"x")
                    if trickler.recv(1, socket.MSG_DONTWAIT) == b"":
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    break
                time.sleep(0.5)
            cut.set()

        threading.Thread(target=trickle, daemon=True).start()
        assert cut.wait(60) and time.monotonic() - started < listener.CONNECTION_DEADLINE_S + 5
        stopping = time.monotonic()
        served.stop()
        assert time.monotonic() - stopping < listener.STOP_WAIT_S + 1
    finally:
        served.stop()
        for s in flood:
            s.close()
