"""Scenarios for reconcile/parallel.py, each run in a fresh interpreter (``python tests/parallelkit.py NAME``):
forked workers are used only while a process has one thread, and a pytest-xdist worker has more. Each
prints one JSON line: what the map returned (or raised) beside the serial loop's, and what was left running."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

PARENT = os.getpid()


def square(i: int) -> tuple[int, int, int]:
    return i, i * i, os.getpid()  # the pid says where it ran


def raises_at(i: int) -> int:
    if i in (300, 700):
        raise ValueError(f"item {i}")
    return i


def dies_in_worker(i: int) -> tuple[int, int, int]:
    if i == 555 and os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)  # a worker killed mid-map (the OOM killer, an operator)
    return square(i)


def children() -> list[int]:
    """This process's live children (every thread's), from /proc."""
    out: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


def outcome(fn, items, via, mapper):  # type: ignore[no-untyped-def]
    try:
        return {"ok": [list(r) if isinstance(r, tuple) else r for r in mapper(fn, items, via=via)]}
    except Exception as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"}


def main(name: str, via: str, n: int, workers: int) -> None:
    from sslreconciler.reconcile.mapping import serial_map
    from sslreconciler.reconcile.parallel import ParallelMap

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as the CLI has it: a write into a dead pipe ends the process
    fds_before = len(os.listdir("/proc/self/fd"))
    if name == "forkfails":  # the kernel refuses a new process (EAGAIN: a process limit reached)
        import errno

        def no_fork() -> int:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

        os.fork = no_fork
    fn = {"square": square, "forkfails": square, "raises": raises_at, "dies": dies_in_worker}[name]
    items = list(range(n))
    mapper = ParallelMap(workers)
    got = outcome(fn, items, via, mapper)
    want = outcome(fn, items, via, serial_map)
    pids = {r[2] for r in got.get("ok", []) if isinstance(r, list)}
    strip = lambda o: {k: [r[:2] if isinstance(r, list) else r for r in v] if k == "ok" else v for k, v in o.items()}  # noqa: E731
    print(json.dumps({
        "same": strip(got) == strip(want), "got": strip(got) if "raised" in got else None, "want_raised": want.get("raised"),
        "workers_for": mapper.workers_for(n, via), "other_pids": len(pids - {os.getpid()}),
        "threads_after": threading.active_count(), "children_after": children(),
        "fds_leaked": len(os.listdir("/proc/self/fd")) - fds_before,
        "sigpipe_after": int(signal.getsignal(signal.SIGPIPE)) == int(signal.SIG_DFL),
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
