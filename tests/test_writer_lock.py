"""One writer per ssl dir: one-shots beside each other or beside the daemon never fail on each other's
temp files (each takes the writer lock, a flock on the ssl dir's 0600 lock file, and waits its turn)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from daemonkit import RunningDaemon

from conftest import run_cli
from pkitools import Issued, seed_node

HOST = "master.example.com"


def _reconcile_proc(node) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(node.ssl_dir),
                             "--desired-state", str(node.desired), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _no_write_failure(proc: subprocess.Popen[str]) -> None:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert "write-failed" not in out and "Traceback" not in err


def test_two_one_shots_at_once_both_succeed(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    for i in range(8):  # every store rewritten each round: a new store password
        node.desired.write_text(json.dumps({"hostname": HOST, "password": {"value": f"pass-{i}"}}))
        procs = [_reconcile_proc(node), _reconcile_proc(node)]
        for proc in procs:
            _no_write_failure(proc)


def test_one_shot_beside_the_daemon_succeeds(tmp_path: Path, ca: Issued) -> None:
    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    d = RunningDaemon(node, tmp_path / "d")
    try:
        d.start()
        for i in range(8):  # the daemon sees the edit and rewrites too, while the one-shot does
            node.desired.write_text(json.dumps({"hostname": HOST, "password": {"value": f"pass-{i}"}}))
            _no_write_failure(_reconcile_proc(node))
        doc = d.wait_for(lambda x: x["status"] == "ok", what="daemon ok after the one-shots")
        assert not [f for f in doc["findings"] if f["code"] == "write-failed"]
    finally:
        d.close()


def test_a_held_lock_makes_a_writer_wait_then_go(tmp_path: Path, ca: Issued) -> None:
    from sslreconciler.writer_lock import lock_for_writing

    node = seed_node(tmp_path / "n", HOST, ca, web=True)
    fd = os.open(node.ssl_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        held = lock_for_writing(fd, str(node.ssl_dir), wait_s=5)
        proc = _reconcile_proc(node)
        # while the lock is held nothing is written
        try:
            proc.wait(timeout=3)
            raise AssertionError("reconcile ran while another writer held the lock")
        except subprocess.TimeoutExpired:
            pass
        assert not (node.ssl_dir / "ssl.keystore").exists()
        held.release()
        _no_write_failure(proc)
        assert (node.ssl_dir / "ssl.keystore").exists()
    finally:
        os.close(fd)
    # a dry run (check) never waits for the lock
    fd = os.open(node.ssl_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with lock_for_writing(fd, str(node.ssl_dir), wait_s=5):
            # another process than the lock holder: check reads only and never waits for the lock
            checked = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired, timeout=60,
                              process=True)
            assert checked.rc == 0 and "ok (check: nothing written)" in checked.out, checked.out + checked.err
    finally:
        os.close(fd)


def test_a_writer_that_gives_up_names_who_holds_the_lock(tmp_path) -> None:
    """The bounded wait ends with the holder's pid and name (from /proc/locks), not just "locked"."""
    from sslreconciler.writer_lock import DirLocked, lock_for_writing

    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\nfrom sslreconciler.writer_lock import lock_for_writing\n"
         f"fd = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY)\n"
         f"held = lock_for_writing(fd, {str(tmp_path)!r})\nprint('held', flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(DirLocked) as refused:
                lock_for_writing(fd, str(tmp_path), wait_s=0.3)
            assert f"pid {holder.pid}, python" in refused.value.strerror, refused.value.strerror
            holder.kill()
            holder.wait(timeout=60)
            lock_for_writing(fd, str(tmp_path), wait_s=60).release()  # the holder gone: taken at once
        finally:
            os.close(fd)
    finally:
        holder.kill()
        holder.wait(timeout=60)
