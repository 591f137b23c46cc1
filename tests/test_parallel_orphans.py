"""Issue 27: a one-shot ``reconcile`` killed while its forked workers run (kill -9, SIGTERM: an OOM kill, an
Ansible timeout) leaves no worker behind, and no worker ever holds the ssl dir's writer lock: the next writer
gets the lock at once. (Before, the orphaned workers lived on under pid 1 with the inherited lock descriptor:
the next reconcile waited 120 s and failed naming the dead parent.)

The reconcile runs as a real process through a small runner whose forked workers sleep before their chunk,
so the parent is surely killed mid-map; the workers are found as the parent's children in /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sslreconciler.fsio import LOCK_NAME
from sslreconciler.writer_lock import lock_holder, try_lock_for_writing

from pkitools import Issued, make_ca, seed_node, write

RUNNER = r"""
import os, sys, time


def child():  # a forked worker: its chunk waits, so the parent is killed while the map runs
    import sslreconciler.reconcile.parallel as parallel

    run_chunk = parallel._run_chunk
    parallel._run_chunk = lambda fn, chunk: (time.sleep(60), run_chunk(fn, chunk))[1]


os.register_at_fork(after_in_child=child)
from sslreconciler.cli.app import main
sys.exit(main(sys.argv[1:]))
"""
TRUST_FILES = 650


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, ca: Issued) -> Path:
    root = tmp_path_factory.mktemp("orphans") / "n"
    seed_node(root, "master.example.com", ca)
    for i in range(TRUST_FILES):
        write(root / "ssl" / "authorities" / f"ca{i:03d}.crt", make_ca(f"ca{i:03d}.example.com", kind="ec").cert_pem())
    return root


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


def alive(pid: int) -> bool:
    """Running (a zombie holds no descriptor and no lock: it is gone for this purpose)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def holds_lock_file(pid: int, lock: Path) -> bool:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd).startswith(str(lock)):  # also "... (deleted)"
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one usable core: the build is serial anyway")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_reconcile_leaves_no_worker_and_no_lock(node: Path, sig: signal.Signals) -> None:
    ssl, state = node / "ssl", node / f"state-{sig.name}"
    lock = ssl / LOCK_NAME
    parent = subprocess.Popen(
        [sys.executable, "-c", RUNNER, "reconcile", "--full-read", "--ssl-dir", str(ssl), "--state-dir", str(state),
         "--desired-state", str(node / "desired-state.json")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "SSLRECONCILER_WORKERS": "2"},
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "the reconcile started no workers"
            workers = children(parent.pid)
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are in their chunks now
        assert all(alive(w) for w in workers)
        # While the parent lives, it alone holds the lock: no worker has the lock file open.
        assert holds_lock_file(parent.pid, lock), "the parent does not hold the lock file (test setup)"
        assert [w for w in workers if holds_lock_file(w, lock)] == [], "a forked worker holds the writer lock"
        assert lock_holder_pid(ssl) == parent.pid
        assert not lock_is_free(ssl), "the workers' closing their copies let go of the parent's lock"
        os.kill(parent.pid, sig)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w for w in workers if alive(w)] == [], "a worker outlived its killed parent"
        assert lock_is_free(ssl), "the next writer does not get the lock at once"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for w in workers:  # on a failure: leave nothing running
            if alive(w):
                os.kill(w, signal.SIGKILL)


def lock_holder_pid(ssl: Path) -> int:
    dir_fd = os.open(ssl, os.O_RDONLY | os.O_DIRECTORY)
    try:
        holder = lock_holder(dir_fd)
    finally:
        os.close(dir_fd)
    return int(holder.split(",")[0].removeprefix("pid "))


def lock_is_free(ssl: Path) -> bool:
    """Would the next writer get the lock now (taken and let go again if so)?"""
    dir_fd = os.open(ssl, os.O_RDONLY | os.O_DIRECTORY)
    try:
        held = try_lock_for_writing(dir_fd, str(ssl))
        if held is not None:
            held.release()
        return held is not None
    finally:
        os.close(dir_fd)


def worker_init(parent: str) -> subprocess.CompletedProcess[str]:
    """The workers' initializer run in a new process told its parent is ``parent``; prints PR_GET_PDEATHSIG."""
    code = ("import ctypes, os, sys\nfrom sslreconciler.reconcile.parallel import _die_with\n"
            f"_die_with({parent})\nsig = ctypes.c_int(0)\nctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0)\n"
            "print(sig.value)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_asks_to_die_with_its_parent_and_exits_if_it_is_gone() -> None:
    alive_parent = worker_init("os.getppid()")
    assert (alive_parent.returncode, alive_parent.stdout.strip()) == (0, str(int(signal.SIGKILL))), alive_parent
    gone = worker_init(str(os.getpid() + 10_000_000))  # not its parent: the one that forked it is gone already
    assert (gone.returncode, gone.stdout) == (1, ""), gone
