"""A signal is handled at once, whichever of the daemon's threads the kernel hands it to.

Python runs signal handlers in the main thread only. A process-directed signal may be delivered to any
thread that does not block it (watchdog's observer, the health server, the hook worker); then the C
handler only sets a flag, and a main thread asleep in ``select`` would not look at it before its next
deadline (a resync: minutes away). ``signal.set_wakeup_fd`` on the loop's self-pipe wakes it.

``kill(tid)`` with the id of one of the other threads makes the kernel prefer that thread (Linux's
complete_signal tries the named task first), so the test does not depend on luck.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from daemonkit import RunningDaemon

from pkitools import Issued, seed_node


@pytest.fixture
def daemon(tmp_path: Path, ca: Issued):
    node = seed_node(tmp_path / "n", "master.example.com", ca, web=True)
    # the next deadline of its own is an hour away: only a wake-up can make it look sooner
    d = RunningDaemon(node, tmp_path / "d", settings="resync_interval = 3600.0")
    yield d
    d.close()


def _other_threads(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]


def test_sigterm_given_to_another_thread_stops_the_daemon_at_once(daemon: RunningDaemon) -> None:
    daemon.start()
    assert daemon.proc is not None
    others = _other_threads(daemon.proc.pid)
    assert others, "the daemon runs its watcher and its socket on threads of their own"
    os.kill(others[0], signal.SIGTERM)
    assert daemon.proc.wait(timeout=60) == 0  # without the wake-up: after the hour-long wait


def test_sighup_given_to_another_thread_reloads_at_once(daemon: RunningDaemon) -> None:
    daemon.start()
    assert daemon.proc is not None
    count = daemon.reconciles()
    for tid in _other_threads(daemon.proc.pid)[:1]:
        os.kill(tid, signal.SIGHUP)
    doc = daemon.wait_for(lambda d: d["counts"]["reconciles"] > count, timeout=60, what="reconcile after SIGHUP")
    assert doc["last_reconcile"]["trigger"] == "reload (SIGHUP)"
