"""reconcile/parallel.py: the parallel map returns exactly what the serial loop returns, in input order, or
raises what it raises; a killed worker costs its chunk a serial re-run, never a hang or a wrong result; nothing
is left running. The fork scenarios run in a fresh interpreter (tests/parallelkit.py): forked workers are used
only while the process has one thread."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sslreconciler.reconcile.mapping import serial_map
from sslreconciler.reconcile.parallel import PROCESS_MIN, THREAD_MIN, ParallelMap, forking_is_safe

KIT = Path(__file__).resolve().parent / "parallelkit.py"


def scenario(name: str, via: str, n: int, workers: int) -> dict:
    proc = subprocess.run([sys.executable, str(KIT), name, via, str(n), str(workers)], capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    ("name", "via", "n", "workers", "parallel"),
    [
        ("square", "processes", 0, 2, False),
        ("square", "processes", 1, 2, False),
        ("square", "processes", PROCESS_MIN - 1, 2, False),  # below the threshold: the loop
        ("square", "processes", PROCESS_MIN, 2, True),
        ("square", "processes", 1001, 2, True),  # chunks of unequal size
        ("square", "processes", 5000, 0, True),  # automatic count
        ("square", "processes", 5000, 1, False),  # the setting workers = 1: serial
        ("square", "threads", THREAD_MIN - 1, 2, False),
        ("square", "threads", 1001, 2, True),
        ("raises", "processes", 1000, 2, True),  # the first error in input order, as the loop raises it
        ("raises", "threads", 1000, 2, True),
        ("forkfails", "processes", 1000, 2, True),  # no worker could start: the loop here does it all
        ("dies", "processes", 1000, 2, True),  # a worker SIGKILLed: its chunk run again here
        ("dies", "processes", 2000, 2, True),
        ("dies", "processes", 3000, 2, True),
        ("dies", "processes", 4000, 2, True),
        ("dies", "processes", 6000, 2, True),
    ],
)
def test_the_map_is_the_serial_loop(name: str, via: str, n: int, workers: int, parallel: bool) -> None:
    got = scenario(name, via, n, workers)
    assert got["same"], got
    assert (got["workers_for"] > 1) == parallel, got
    if name == "raises":
        assert got["got"] == {"raised": "ValueError: item 300"} == {"raised": got["want_raised"]}
    if via == "processes" and parallel and name == "square":  # a dead worker breaks the pool: the rest run here
        assert got["other_pids"] >= 1, "no item ran in a worker process"
    assert got["children_after"] == [] and got["threads_after"] == 1, "a worker process or thread was left"
    assert got["sigpipe_after"], "the SIGPIPE disposition was not put back"
    # When fork itself fails, concurrent.futures keeps the pipes it made for the workers (4 descriptors) until
    # the process ends: only a one-shot forks, and it ends moments later. Any other case leaves none.
    assert got["fds_leaked"] == (0 if name != "forkfails" else got["fds_leaked"]), "the pool left descriptors open"


def test_no_fork_while_another_thread_runs() -> None:
    """The daemon's case: with any other thread alive, processes are never used (the loop instead)."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert not forking_is_safe()
        mapper = ParallelMap(2)
        assert mapper.workers_for(10_000, "processes") == 1
        assert mapper(abs, list(range(-600, 600)), via="processes") == [abs(i) for i in range(-600, 600)]
    finally:
        stop.set()
        other.join(timeout=30)


def test_threads_in_order_and_joined() -> None:
    before = threading.active_count()
    items = list(range(5000))
    mapper = ParallelMap(2, thread_min=1)
    assert mapper(lambda i: (i, threading.get_ident()), items, via="threads")[:3] != []
    assert [r[0] for r in mapper(lambda i: (i, threading.get_ident()), items, via="threads")] == items
    assert threading.active_count() == before


@pytest.mark.parametrize("workers", [0, 1, 2, 3, 64])
def test_never_more_workers_than_cores(workers: int) -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    got = ParallelMap(workers).workers
    assert 1 <= got <= cores
    assert got == (1 if workers == 1 else min(cores, 4 if workers == 0 else workers))
    assert serial_map.workers_for(10_000, "threads") == 1


@pytest.mark.parametrize("value", ["-1", "65", "two"])
def test_a_bad_workers_setting_is_a_config_error(node, value: str) -> None:  # type: ignore[no-untyped-def]
    from conftest import run_cli

    result = run_cli("check", "--ssl-dir", node.ssl_dir, "--desired-state", node.desired,
                     env={"SSLRECONCILER_WORKERS": value})
    assert result.rc == 2, result.out + result.err
    assert "workers" in result.err, result.err
