"""The writer lock, round 2: nobody but root and the ssl dir's owner can hold it, whatever they open or
plant; and the daemon keeps pinging the watchdog, answering /health and obeying SIGTERM while it waits.

Run as root on an ssl dir a real throwaway user owns (the way sipx owns /etc/sipxpbx/ssl); the
outsider is ``nobody``, who can read the 0755 ssl dir but not write it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from daemonkit import RunningDaemon
from userkit import as_user, chown_tree, outside_secret, run_as, state_of

from conftest import SOAK_SCALE, run_cli, soak_size
from pkitools import Issued, seed_node

HOST = "master.example.com"
LOCK_NAME = ".sslreconciler.lock"
PROMPT_S = 60.0  # a reconcile that waited for the lock would take 120 s and end `locked`

# Everything the outsider can open below the ssl dir (the dir itself included) it locks in every way
# the kernel offers, each on a descriptor of its own: flock shared and exclusive, fcntl and OFD read
# and write locks, through every way it may open the file (O_PATH too); the lock file's name as well.
# Then it says so, and keeps trying the lock file whenever a writer makes one.
_OUTSIDER = r"""
import fcntl, os, struct, sys, time
root = sys.argv[1]
held, tried = [], 0
def flock(how):
    return lambda fd: fcntl.flock(fd, how | fcntl.LOCK_NB)
def record(cmd, kind):
    return lambda fd: fcntl.fcntl(fd, cmd, struct.pack("hhqqi", kind, 0, 0, 0, 0))
F_OFD_SETLK = 37
KINDS = [(flock(fcntl.LOCK_SH), ()), (flock(fcntl.LOCK_EX), ()),
         (record(fcntl.F_SETLK, fcntl.F_RDLCK), ()), (record(F_OFD_SETLK, fcntl.F_RDLCK), ()),
         (record(fcntl.F_SETLK, fcntl.F_WRLCK), (os.O_RDWR, os.O_WRONLY)),
         (record(F_OFD_SETLK, fcntl.F_WRLCK), (os.O_RDWR, os.O_WRONLY))]
def lock_every_way(path):
    # each kind of lock on a descriptor of its own, opened every way the outsider may open it
    global tried
    got = 0
    for take, needs in KINDS:
        for flags in needs or (os.O_RDONLY, os.O_RDWR, os.O_WRONLY, os.O_PATH):
            try:
                fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW)
            except OSError:
                continue
            tried += 1
            try:
                take(fd)
            except OSError:
                os.close(fd)
                continue
            held.append(fd)
            got += 1
            break
    return got
paths = [root]
for dirpath, dirs, files in os.walk(root):
    paths += [os.path.join(dirpath, n) for n in dirs + files]
paths.append(os.path.join(root, %(lock)r))
for path in paths:
    lock_every_way(path)
print(f"held {len(held)} tried {tried}", flush=True)
# then, until told to stop, grab the lock file whenever a writer makes it (a race for it, not one look)
import threading
done, grabbed = threading.Event(), []
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
lock = os.path.join(root, %(lock)r)
while not done.is_set():
    if not lock_every_way(lock):
        time.sleep(0.0005)
        continue
    grabbed.append(lock)
print(f"grabbed {len(grabbed)}", flush=True)
""".replace("%(lock)r", repr(LOCK_NAME))

# A legitimate writer (root or the owner) holding the lock the way sslreconciler takes it.
_HOLDER = r"""
import os, sys
from sslreconciler.fsio import open_dir
try:
    from sslreconciler.writer_lock import lock_for_writing
except ImportError:  # before round 2: the lock was a flock on the ssl dir's descriptor
    from sslreconciler.fsio import lock_for_writing
fd = open_dir(sys.argv[1])
held = lock_for_writing(fd, sys.argv[1], 5)
print("held", flush=True)
sys.stdin.read()
if held is not None:
    held.release()
"""


def _nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


def _node(world: Path, ca: Issued, user):
    node = seed_node(world / "node", HOST, ca, web=True)
    chown_tree(node.ssl_dir, user)
    state = world / "state"
    state.mkdir(mode=0o700)
    return node, state


def _reconcile_promptly(node, state: Path) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(node.ssl_dir),
                             "--desired-state", str(node.desired), "--state-dir", str(state), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=PROMPT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"root's reconcile still waiting after {time.monotonic() - t0:.0f} s: {out}{err}") from None
    assert proc.returncode == 0, out + err
    assert '"locked"' not in out, out
    return json.loads(out)


def _start(argv: list[str], ready: str = "held") -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(ready):
        proc.kill()
        raise AssertionError(f"helper did not start: {line}{proc.communicate()[1]}")
    proc.line = line  # type: ignore[attr-defined]
    return proc


def _end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stores_written(node) -> None:
    for name in ("ssl.keystore", "ssl-web.keystore", "authorities.jks"):
        assert (node.ssl_dir / name).is_file(), name


# -- item 1: nobody else can hold the writer lock ------------------------------------------------------


def test_an_outsider_holding_every_lock_it_can_never_stalls_roots_reconcile(world: Path, ca: Issued,
                                                                             service_user) -> None:
    node, state = _node(world, ca, service_user)
    _reconcile_promptly(node, state)  # the stores (and anything a writer leaves) exist for the outsider to try
    outsider = _start(as_user(_nobody(), sys.executable, "-c", _OUTSIDER, node.ssl_dir))
    try:
        print(outsider.line.strip())
        assert "held 0 " not in outsider.line, outsider.line  # it held something: the test can fail
        node.desired.write_text(json.dumps({"hostname": HOST, "password": {"value": "new-pass"}}))
        t0 = time.monotonic()
        report = _reconcile_promptly(node, state)
        assert time.monotonic() - t0 < PROMPT_S
        assert report["status"] == "ok", report["findings"]
        stores = [a for a in report["artifacts"].values() if not a["kind"].startswith("pem")]  # PEM: no password
        assert {a["action"] for a in stores} == {"written"}
    finally:
        _end(outsider)
    assert outsider.stdout is not None and outsider.stdout.read().strip() == "grabbed 0"


def test_every_writer_goes_ahead_while_an_outsider_holds_the_ssl_dir(world: Path, ca: Issued,
                                                                      service_user) -> None:
    """`web install`, `web rollback` and `pki install-bundle` take the same lock as `reconcile`."""
    node, state = _node(world, ca, service_user)
    _reconcile_promptly(node, state)
    outsider = _start(as_user(_nobody(), sys.executable, "-c", _OUTSIDER, node.ssl_dir))
    try:
        assert node.web is not None
        cert, key = world / "new.crt", world / "new.key"
        cert.write_bytes(node.web.cert_pem())
        key.write_bytes(node.web.key_pem())
        key.chmod(0o600)
        common = ["--ssl-dir", node.ssl_dir, "--desired-state", node.desired, "--state-dir", state]
        for argv in (["web", "install", *common, "--cert", cert, "--key", key], ["web", "rollback", *common]):
            t0 = time.monotonic()
            result = run_cli(*argv, timeout=PROMPT_S + 60)
            assert time.monotonic() - t0 < PROMPT_S, f"{argv[:2]} waited for the outsider"
            assert "another sslreconciler" not in result.out + result.err, result.out + result.err
    finally:
        _end(outsider)


def test_the_lock_object_is_the_owners_alone(world: Path, ca: Issued, service_user) -> None:
    """While a writer holds it, the lock is a regular 0600 file of the ssl dir's owner (root made it);
    the outsider cannot open it, and once released nothing is left behind."""
    node, _ = _node(world, ca, service_user)
    before = sorted(os.listdir(node.ssl_dir))
    holder = _start([sys.executable, "-c", _HOLDER, str(node.ssl_dir)])  # root holds it
    try:
        st = (node.ssl_dir / LOCK_NAME).lstat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_nlink == 1
        assert (st.st_uid, st.st_gid) == (service_user.pw_uid, service_user.pw_gid)
        for how in ("os.O_RDONLY | os.O_NONBLOCK", "os.O_WRONLY | os.O_NONBLOCK"):
            probe = subprocess.run(as_user(_nobody(), sys.executable, "-c",
                                           f"import os; os.open({str(node.ssl_dir / LOCK_NAME)!r}, {how})"),
                                   capture_output=True, text=True, timeout=60)
            assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr
        # a descriptor that opens nothing (O_PATH, anyone may have one) takes no lock of any kind
        probe = subprocess.run(as_user(_nobody(), sys.executable, "-c", "import fcntl, os, struct\n"
                                       f"fd = os.open({str(node.ssl_dir / LOCK_NAME)!r}, os.O_PATH)\n"
                                       "for lock in (lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB),\n"
                                       "             lambda: fcntl.fcntl(fd, fcntl.F_SETLK, struct.pack('hhqqi', 0, 0, 0, 0, 0))):\n"
                                       "    try:\n        lock(); print('locked')\n    except OSError as e:\n"
                                       "        print(e.errno)"),
                               capture_output=True, text=True, timeout=60)
        assert "locked" not in probe.stdout and probe.returncode == 0, probe.stdout + probe.stderr
    finally:
        _end(holder)
    assert sorted(os.listdir(node.ssl_dir)) == before


def test_a_writer_neither_root_nor_the_owner_is_refused_by_name(world: Path, ca: Issued, service_user) -> None:
    """Someone the ssl dir's group lets write could only make a lock file the owner's daemon cannot
    open: refused, saying who may write there, and nothing is left behind."""
    node, state = _node(world, ca, service_user)
    nobody = _nobody()
    os.chown(node.ssl_dir, service_user.pw_uid, nobody.pw_gid)
    node.ssl_dir.chmod(0o775)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    before = sorted(os.listdir(node.ssl_dir))
    proc = subprocess.run(as_user(nobody, sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir",
                                  node.ssl_dir, "--desired-state", node.desired, "--state-dir", state, "--json"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    found = [f for f in json.loads(proc.stdout)["findings"] if f["code"] == "locked"]
    assert found and f"only root and the directory's owner (uid {service_user.pw_uid})" in found[0]["reason"], found
    assert sorted(os.listdir(node.ssl_dir)) == before


@pytest.mark.parametrize("plant", ["symlink", "fifo", "hardlink", "loose-and-held", "directory", "root-owned"])
def test_what_the_owner_plants_at_the_lock_name_never_turns_root(world: Path, ca: Issued, service_user,
                                                                   plant: str) -> None:
    """The owner may put anything at the lock's name; root follows no link, opens no FIFO for good, writes
    to no other file, and still reconciles at once. A lock file someone else may have open (a looser
    mode) is replaced, not trusted."""
    node, state = _node(world, ca, service_user)
    secret, secret_bytes = outside_secret(world)  # root's file outside
    mine = world / "mine"  # a file of the owner's own, outside the ssl dir
    mine.write_bytes(b"the owner's own file\n")
    mine.chmod(0o600)
    os.chown(mine, service_user.pw_uid, service_user.pw_gid)
    lock = node.ssl_dir / LOCK_NAME
    outsider = None
    if plant == "symlink":
        run_as(service_user, f"import os; os.symlink({str(secret)!r}, {str(lock)!r})")
    elif plant == "fifo":
        run_as(service_user, f"import os; os.mkfifo({str(lock)!r}, 0o600)")
    elif plant == "hardlink":
        run_as(service_user, f"import os; os.link({str(mine)!r}, {str(lock)!r})")
    elif plant == "directory":
        run_as(service_user, f"import os; os.mkdir({str(lock)!r}, 0o700); open({str(lock / 'x')!r}, 'w')")
    elif plant == "root-owned":  # e.g. left by something else root ran: the service could never open it
        lock.write_bytes(b"")
        lock.chmod(0o600)
    else:  # a 0644 lock file (an admin's `touch` and `chown`), opened and locked by the outsider
        run_as(service_user, f"import os; os.close(os.open({str(lock)!r}, os.O_CREAT | os.O_WRONLY, 0o644))")
        outsider = _start(as_user(_nobody(), sys.executable, "-c",
                                  "import fcntl, os, sys\n"
                                  f"fd = os.open({str(lock)!r}, os.O_RDONLY)\n"
                                  "fcntl.flock(fd, fcntl.LOCK_SH)\nprint('held', flush=True)\nsys.stdin.read()"))
    secret_before, mine_before = state_of(secret), state_of(mine)
    try:
        report = _reconcile_promptly(node, state)
        assert report["status"] == "ok", report["findings"]
        _stores_written(node)
    finally:
        if outsider is not None:
            _end(outsider)
    assert state_of(secret) == secret_before
    assert secret.read_bytes() == secret_bytes
    assert state_of(mine) == mine_before
    # the owner's daemon is not locked out afterwards: the owner can take the lock at once
    _end(_start(as_user(service_user, sys.executable, "-c", _HOLDER, node.ssl_dir)))


def test_writers_taking_the_lock_beside_the_daemon_are_no_change_to_reconcile_for(tmp_path: Path,
                                                                                 ca: Issued) -> None:
    """The lock file comes and goes with every writer: the watcher must not take it for a change. Three
    writers come and go, then the desired state is written: the one reconcile that follows is for that
    write (were the lock file's events relevant, the first of them would name the reconcile)."""
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    d = RunningDaemon(node, tmp_path / "d")
    try:
        d.start()
        before = d.wait_for(lambda x: x["status"] == "ok", what="first reconcile")["counts"]["reconciles"]
        for _ in range(3):
            _end(_start([sys.executable, "-c", _HOLDER, str(node.ssl_dir)]))
        node.desired.write_text(node.desired.read_text())
        doc = d.wait_for(lambda x: x["counts"]["reconciles"] > before, what="the reconcile for the write")
        assert doc["counts"]["reconciles"] == before + 1
        assert doc["last_reconcile"]["trigger"].endswith(str(node.desired)), doc["last_reconcile"]
    finally:
        d.close()


# -- item 2: the daemon never stalls while it waits for the lock ---------------------------------------


def _notifications(d: RunningDaemon, seconds: float) -> list[tuple[float, str]]:
    """(monotonic time, message) of every sd_notify datagram in the next ``seconds``."""
    got: list[tuple[float, str]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with contextlib.suppress(TimeoutError, BlockingIOError):
            got.append((time.monotonic(), d.notify.recv(65536).decode()))
    return got


def _max_gap(times: list[float], start: float, end: float) -> float:
    points = [start, *times, end]
    return max(b - a for a, b in itertools.pairwise(points))


@pytest.mark.slow
def test_the_daemon_keeps_pinging_answering_and_obeying_sigterm_while_it_waits(tmp_path: Path,
                                                                                ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    d = RunningDaemon(node, tmp_path / "d", env={"WATCHDOG_USEC": "1000000"})  # a ping every 0.5 s
    holder = None
    try:
        d.start()
        d.wait_for(lambda x: x["status"] == "ok", what="first reconcile")
        holder = _start([sys.executable, "-c", _HOLDER, str(node.ssl_dir)])
        node.desired.write_text(json.dumps({"hostname": HOST, "password": {"value": "new-pass"}}))
        d.drain()
        held_from = time.monotonic()
        pings = [t for t, m in _notifications(d, 8.0) if m == "WATCHDOG=1"]
        gap = _max_gap(pings, held_from, time.monotonic())
        code, doc = d.health()
        t0 = time.monotonic()
        d.send(signal.SIGTERM)
        try:
            d.proc.wait(timeout=20)
            sigterm_s = time.monotonic() - t0
        except subprocess.TimeoutExpired:
            sigterm_s = float("inf")
        print(f"while the lock was held: longest watchdog gap {gap:.2f} s, SIGTERM answered in {sigterm_s:.2f} s")
        assert gap < 4.0, f"no WATCHDOG=1 for {gap:.1f} s while waiting for the lock"
        assert sigterm_s < 10.0, f"SIGTERM not acted on in {sigterm_s:.1f} s"
        assert d.proc.returncode == 0
        assert doc["writer_lock"]["waiting"] is True, doc.get("writer_lock")
        assert doc["writer_lock"]["holder"].startswith(f"pid {holder.pid}"), doc["writer_lock"]
        assert doc["status"] == "pending" and code == 200
        assert any(f["code"] == "locked" and "waiting for the writer lock" in f["reason"] for f in doc["findings"])
    finally:
        if holder is not None:
            _end(holder)
        d.close()


def test_a_daemon_started_while_the_lock_is_held_is_ready_at_once_and_reconciles_after(tmp_path: Path,
                                                                                      ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    d = RunningDaemon(node, tmp_path / "d", env={"WATCHDOG_USEC": "1000000"})
    holder = _start([sys.executable, "-c", _HOLDER, str(node.ssl_dir)])
    try:
        t0 = time.monotonic()
        d.start(wait=False)
        d.wait_message("READY=1", timeout=30)
        ready_s = time.monotonic() - t0
        doc = d.wait_for(lambda x: x.get("writer_lock", {}).get("waiting") is True, timeout=30,
                         what="/health saying the daemon waits for the lock")
        assert doc["status"] == "pending" and "waiting for the writer lock" in doc["message"]
        assert not (node.ssl_dir / "ssl.keystore").exists()  # nothing written while another writer holds it
        print(f"READY=1 {ready_s:.2f} s after start with the lock held")
        _end(holder)
        doc = d.wait_for(lambda x: x["status"] == "ok", timeout=60, what="the reconcile once the lock is free")
        assert doc["writer_lock"] == {"waiting": False}
        _stores_written(node)
        assert d.proc.poll() is None
    finally:
        _end(holder)
        d.close()


def test_a_wait_past_the_one_shots_patience_is_an_error_in_the_health_document() -> None:
    """Up to 120 s (what a one-shot waits) the daemon's wait is `pending`; past it, `degraded`."""
    import datetime as dt

    from sslreconciler.daemon.document import LockWait, with_lock_wait

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    doc = {"status": "ok", "findings": [], "ssl_dir": "/etc/sipxpbx/ssl"}
    short = with_lock_wait(dict(doc), LockWait("/etc/sipxpbx/ssl", start, 3.0, "pid 7, python3", "resync"))
    long = with_lock_wait(dict(doc), LockWait("/etc/sipxpbx/ssl", start, 121.0, "pid 7, python3", "resync"))
    assert (short["status"], short["findings"][0]["level"]) == ("pending", "warning")
    assert (long["status"], long["findings"][0]["level"]) == ("degraded", "error")
    assert "pid 7, python3" in long["findings"][0]["reason"] and long["findings"][0]["code"] == "locked"
    assert long["writer_lock"] == {"waiting": True, "since": "2026-01-01T00:00:00Z", "waited_s": 121.0,
                                   "holder": "pid 7, python3", "trigger": "resync"}
    assert doc == {"status": "ok", "findings": [], "ssl_dir": "/etc/sipxpbx/ssl"}  # a copy, not changed


def test_the_lock_file_coming_and_going_still_admits_one_writer_at_a_time(tmp_path: Path) -> None:
    """Four writers, 500 turns each (SSLRECONCILER_SOAK_SCALE times), the lock file made and removed every
    turn: never two inside."""
    script = r"""
import os, sys
from sslreconciler.fsio import open_dir
from sslreconciler.writer_lock import lock_for_writing
d = sys.argv[1]
fd = open_dir(d)
for _ in range(int(sys.argv[2])):
    with lock_for_writing(fd, d, 60):
        inside = os.open("inside", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600, dir_fd=fd)  # fails if two are in
        os.close(inside)
        os.unlink("inside", dir_fd=fd)
print("done")
"""
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(soak_size(500))], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=300 * max(1.0, SOAK_SCALE))
        assert proc.returncode == 0 and out.strip() == "done", err
    assert os.listdir(tmp_path) == []
