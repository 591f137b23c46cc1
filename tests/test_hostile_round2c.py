"""Issue 21, second review (c): the ACME standalone listener out of file descriptors, and root's bundle
record kept out of the service user's state dir by the Ansible node role.

The listener runs in a real subprocess with a low descriptor limit; the roles run through ansible-playbook
as root on directories a throwaway user owns.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from acmekit import StrayClient, free_port

# -- item 2: the standalone listener out of descriptors neither spins nor stops answering the CA ------------

WINDOW_S = 3.0
FD_LIMIT = 100
IDLE_CLIENTS = 150  # more than FD_LIMIT: accept() fails with EMFILE while they are held

LISTENER = """
import os, resource, sys, threading, time
from sslreconciler.cluster.acme.listener import Http01Listener

def cpu():
    t = os.times()
    return t.user + t.system

window = float(sys.argv[2])
# What one busy thread gets of a core on this machine now: the measure a spinning loop is held to.
spun, stop = cpu(), time.monotonic() + window
while time.monotonic() < stop:
    pass
print('spin', cpu() - spun, flush=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[3]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
served = Http01Listener('127.0.0.1', int(sys.argv[1]), {'tok': b'tok.thumb'})
served.start()
print('ready', flush=True)
for line in sys.stdin:  # 'cpu': the process's user+sys seconds so far
    print('cpu', cpu(), flush=True)
served.stop()
"""


class _Child:
    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(port), str(WINDOW_S), str(FD_LIMIT)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def line(self, word: str) -> float:
        assert self.proc.stdout is not None
        got = self.proc.stdout.readline().split()
        assert got[:1] == [word], got
        return float(got[1]) if len(got) > 1 else 0.0

    def cpu(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        return self.line("cpu")

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


def _get_token(port: int, timeout: float) -> bytes:
    url = f"http://127.0.0.1:{port}/.well-known/acme-challenge/tok"
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read()


def test_the_listener_out_of_descriptors_answers_the_ca_and_does_not_spin() -> None:
    from sslreconciler.cluster.acme import listener

    port = free_port()
    child = _Child(port)
    stray: StrayClient | None = None
    try:
        spin = child.line("spin")  # CPU seconds a busy loop got in WINDOW_S
        child.line("ready")
        stray = StrayClient(port, connections=IDLE_CLIENTS, every=2.0)
        deadline = time.monotonic() + 60
        while stray.connected < IDLE_CLIENTS and time.monotonic() < deadline:  # held (accepted or queued)
            time.sleep(0.05)
        assert stray.connected >= IDLE_CLIENTS, f"only {stray.connected} connections made"
        before, started = child.cpu(), time.monotonic()
        budget = listener.CONNECTION_DEADLINE_S / 2  # answered before any held connection reaches its deadline
        try:
            body = _get_token(port, budget)
        except OSError as exc:
            pytest.fail(f"the CA's GET was not answered within {budget} s beside {IDLE_CLIENTS} idle "
                        f"connections under a limit of {FD_LIMIT} descriptors: {exc}")
        took = time.monotonic() - started
        assert body == b"tok.thumb"
        threading.Event().wait(max(0.0, WINDOW_S - took))  # the rest of the window, the clients still there
        used = child.cpu() - before
        window = time.monotonic() - started
        assert used < spin * window / WINDOW_S / 4, (
            f"the listener used {used:.2f} s of CPU in {window:.1f} s while a busy loop got {spin:.2f} s in "
            f"{WINDOW_S} s: it spins on EMFILE")
    finally:
        if stray is not None:
            stray.stop()
        child.stop()
