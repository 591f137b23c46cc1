"""The health socket's connections are shared fairly by the peers' uids.

Whoever is in the socket's group may connect. One such user holding as many connections as it can, and
reopening each as soon as the daemon answers or cuts it, must not make another uid's `status` UNKNOWN:
root's and a second group member's `status` (the real CLI) get a real answer every time.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemonkit import RunningDaemon, wait_until
from userkit import as_user, chown_tree, make_service_user

from conftest import run_cli
from pkitools import Issued, seed_node

HOST = "master.example.com"
CALLS = 8  # status calls per caller during the flood, at least
FLOOD_S = 8  # and for at least this long

# Runs as the flooding user: keep HELD connections open; reopen each one the daemon answers or cuts, at
# once; stop after SECONDS (bounded in time) or at SIGTERM. Prints what it did as JSON.
FLOODER = r"""
import json, select, signal, socket, sys, time
path, held, seconds, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
end = time.monotonic() + seconds
signal.signal(signal.SIGTERM, lambda *_: globals().update(end=0))  # stop, and say what was done
conns, opened, refused, cut, most = set(), 0, 0, 0, 0
while time.monotonic() < end:
    while len(conns) < held:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except OSError:  # the listen backlog is full: try again after the next poll
            s.close()
            break
        conns.add(s)
        opened += 1
    most = max(most, len(conns))
    if opened >= held and ready:
        open(ready, "w").close()
        ready = ""
    readable, _, _ = select.select(list(conns), [], [], 0.05)
    for s in readable:
        try:
            answer = s.recv(64)
        except OSError:
            answer = b""
        refused += answer.startswith(b"HTTP/1.1 503")
        cut += not answer
        conns.discard(s)
        s.close()
print(json.dumps({"opened": opened, "refused_503": refused, "cut": cut, "most_open": most}))
"""


@pytest.fixture(scope="module")
def flooder() -> Iterator[pwd.struct_passwd]:
    yield from make_service_user("f")


@pytest.fixture(scope="module")
def bystander() -> Iterator[pwd.struct_passwd]:
    yield from make_service_user("b")


@pytest.fixture
def daemon(world: Path, ca: Issued, service_user: pwd.struct_passwd) -> Iterator[RunningDaemon]:
    """The daemon on an ssl dir the service user owns; its socket (and the directories above it, 0750) in
    the service user's group, as the unit's RuntimeDirectory and the group-readable 0660 socket are."""
    node = seed_node(world / "n", HOST, ca, web=True)
    chown_tree(node.ssl_dir, service_user)
    d = RunningDaemon(node, world / "d", settings="grace_period = 0")
    d.start()
    for directory in (d.sockdir, d.socket.parent):
        os.chown(directory, 0, service_user.pw_gid)
        directory.chmod(0o750)
    os.chown(d.socket, 0, service_user.pw_gid)
    d.wait_for(lambda x: x["status"] == "ok", timeout=60, what="ok")
    yield d
    d.close()


def _status(argv: list[str]) -> tuple[bool, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env={**os.environ})
    first = proc.stdout.splitlines()[0] if proc.stdout else proc.stderr.strip()[-200:]
    return proc.returncode == 0 and first.startswith("SSLRECONCILER OK"), first


# 64: twice the daemon's total of slots (the case); 600: the listen backlog full all the time too.
@pytest.mark.slow
@pytest.mark.parametrize("held", [64, 600])
def test_one_uid_holding_and_reopening_connections_never_starves_another(
        held: int, daemon: RunningDaemon, service_user: pwd.struct_passwd, flooder: pwd.struct_passwd,
        bystander: pwd.struct_passwd, world: Path) -> None:
    group = [service_user.pw_gid]
    status = [sys.executable, "-m", "sslreconciler", "status", "--socket", str(daemon.socket)]
    # Both callers get a real answer before the flood: the socket's group lets the bystander in.
    for argv in (status, as_user(bystander, *status, groups=group)):
        ok, first = _status(argv)
        assert ok, f"no status even without a flood: {first}"

    (world / "flooder").mkdir()
    os.chown(world / "flooder", flooder.pw_uid, flooder.pw_gid)
    ready = world / "flooder" / "flooding"
    flood = subprocess.Popen(as_user(flooder, sys.executable, "-c", FLOODER, daemon.socket, str(held), "240",
                                     ready, groups=group), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results: dict[str, list[tuple[bool, str]]] = {"root": [], "bystander": []}
    try:
        wait_until(lambda: ready.exists() or flood.poll() is not None, timeout=60, what="the flood to start")
        assert flood.poll() is None, flood.communicate()
        time.sleep(1)  # a bounded head start: the flooder's connections are in every slot it can get
        # Long enough for the held connections to pass the daemon's 5 s deadline and be reopened.
        flood_end = time.monotonic() + FLOOD_S
        while len(results["root"]) < CALLS or time.monotonic() < flood_end:
            results["root"].append(_status(status))
            results["bystander"].append(_status(as_user(bystander, *status, groups=group)))
            assert flood.poll() is None, "the flooder stopped before the status calls were done"
    finally:
        flood.terminate()
        out, err = flood.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"stderr": err[-500:]}
    calls = len(results["root"])
    counts = {who: sum(ok for ok, _ in got) for who, got in results.items()}
    print(f"\nsocket fairness, {held} held: status OK root {counts['root']}/{calls}, bystander {counts['bystander']}/{calls}; "
          f"flooder {stats}")
    failures = {who: Counter(first.rsplit(": ", 1)[-1] for ok, first in got if not ok) for who, got in results.items()}
    assert counts == {"root": calls, "bystander": calls}, f"status failed under the flood: {failures}"
    # The flood was real: the flooder kept reopening what was turned away and what was cut at the deadline.
    assert stats.get("opened", 0) > 4 * held and stats.get("cut", 0) > 0, stats
    assert daemon.proc is not None and daemon.proc.poll() is None
    # Root's own run is not the only one that works afterwards: the bystander's slots came back.
    assert _status(as_user(bystander, *status, groups=group))[0]
    assert run_cli("status", "--socket", daemon.socket).rc == 0


def test_slots_keep_a_share_per_uid_and_reserve_some_for_root_and_the_daemons_uid() -> None:
    from sslreconciler.daemon.slots import MAX_CONNECTIONS, PER_UID, RESERVED, ConnectionSlots

    daemon_uid = 990
    slots = ConnectionSlots(privileged={0, daemon_uid})
    taken = {uid: sum(slots.take(uid) for _ in range(100)) for uid in (1001, 1002, 1003)}
    assert taken == {1001: PER_UID, 1002: PER_UID, 1003: PER_UID}  # one uid never gets more than its share
    assert sum(slots.take(1004) for _ in range(100)) == MAX_CONNECTIONS - 3 * PER_UID - 2 * RESERVED
    assert not slots.take(1005)  # the rest is reserved
    assert slots.take(0) and slots.take(daemon_uid)
    assert slots.take(0) and slots.take(daemon_uid)
    assert not slots.take(0) and not slots.take(daemon_uid)  # the total is the bound for everyone
    slots.give_back(1001)  # a slot freed: the privileged hold their reserve, so anyone may have it
    assert slots.take(1001) and slots.held() == MAX_CONNECTIONS
    # Root alone may fill everything but the daemon's uid's reserve; the daemon's uid keeps its own.
    alone = ConnectionSlots(privileged={0, daemon_uid})
    assert sum(alone.take(0) for _ in range(100)) == MAX_CONNECTIONS - RESERVED
    assert sum(alone.take(daemon_uid) for _ in range(100)) == RESERVED
