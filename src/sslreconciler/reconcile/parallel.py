"""A parallel map for the pure side's independent work (reconcile/mapping.py): both cores for a cold build.

``ParallelMap(workers)(fn, items, via=...)`` returns exactly ``[fn(i) for i in items]``, in input order:
the items go out in contiguous chunks, the chunks' results are put back in order. Below a threshold, with
one worker, or when the setting ``workers`` is 1 (``SSLRECONCILER_WORKERS=1``), it is that loop itself.

- ``via="threads"``: a thread pool. ``cryptography`` releases the GIL in a signature check, so those run
  on both cores; parsing and attribute access hold it (measured: docs/benchmarks.md), so only work that
  releases it is worth sending here.
- ``via="processes"``: forked worker processes, for plain data and a module-level ``fn``. Fork copies only
  the calling thread, so it is used only while this process has one thread (a one-shot command); with any
  other thread alive (the daemon: its hook worker runs from its start, then watchdog and the socket) a fork
  could copy a lock another thread holds, so the map falls back to the loop in this process. forkserver
  and spawn would be safe there, but each start costs a new interpreter and our imports (about 130 and
  170 ms for two workers here) and their workers' memory: more than the daemon's rare cold build wins.

A chunk whose worker dies (killed, out of memory) or raises is run again here, serially, after the
others: the result is the serial one, and an exception is the one the serial loop raises first. (A dead
worker breaks the whole process pool, so every chunk not yet back runs here; a worker that cannot be
started at all leaves the whole map to the loop.) The pool is shut down before the map returns, its
processes reaped and its threads joined: nothing is left running, whatever happens.

Workers die with this process: if it is killed mid-map (SIGKILL, SIGTERM, the OOM killer, an Ansible
timeout), no shutdown runs, so each worker asks the kernel first thing for SIGKILL when its parent goes
(``prctl(PR_SET_PDEATHSIG)``; Linux only: elsewhere nothing) and then checks that its parent is still the
one that forked it (it may be gone already, before the request was made). The signal comes when the
forking thread ends: the pool forks every worker at once from the thread that maps (the main thread, as
above), which ends only with the process. No worker holds the ssl dir's writer lock meanwhile either:
writer_lock closes its descriptors in every forked child.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from sslreconciler.reconcile.mapping import Via

if TYPE_CHECKING:  # multiprocessing and concurrent.futures are imported when a map is parallel (start-up)
    from concurrent.futures import Executor, Future

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4  # the automatic count's cap: past a few cores a cold build is bound by the parent's share
THREAD_MIN = 64  # fewer items than this: the loop (a thread pool's start costs more than it saves)
PROCESS_MIN = 512  # fewer than this: the loop (a fork, pickling and reaping cost a few ms)
CHUNKS_PER_WORKER = 4  # a slow chunk does not leave the other worker idle for long


def usable_cores() -> int:
    """The processors this process may run on (its affinity mask, e.g. a cgroup's cpuset), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _run_chunk(fn: Callable[[T], R], chunk: Sequence[T]) -> list[R]:
    return [fn(item) for item in chunk]


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """A worker's initializer: SIGKILL when the parent (pid ``parent``) dies, or now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _chunks(items: Sequence[T], workers: int) -> list[Sequence[T]]:
    count = min(len(items), workers * CHUNKS_PER_WORKER)
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def forking_is_safe() -> bool:
    """Fork copies only the calling thread: safe while it is the only one (the main thread, which may also
    set the SIGPIPE disposition around the pool), and fork exists."""
    import multiprocessing

    alone = threading.active_count() == 1 and threading.current_thread() is threading.main_thread()
    return alone and "fork" in multiprocessing.get_all_start_methods()


class ParallelMap:
    """The ``Mapper`` the reconciler hands to decide. ``workers``: 0 automatic (one per usable core, at
    most ``MAX_WORKERS``), 1 serial, n at most n (never more than the usable cores)."""

    def __init__(self, workers: int = 0, thread_min: int = THREAD_MIN, process_min: int = PROCESS_MIN) -> None:
        cores = usable_cores()
        self.workers = min(cores, MAX_WORKERS) if workers <= 0 else min(workers, cores)
        self.thread_min = thread_min
        self.process_min = process_min

    def workers_for(self, n: int, via: Via) -> int:
        if self.workers <= 1 or n < (self.thread_min if via == "threads" else self.process_min):
            return 1
        if via == "processes" and not forking_is_safe():
            return 1
        return min(self.workers, n)

    def __call__(self, fn: Callable[[T], R], items: Sequence[T], /, *, via: Via) -> list[R]:
        workers = self.workers_for(len(items), via)
        if workers <= 1:
            return [fn(item) for item in items]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

        chunks = _chunks(items, workers)
        done: list[list[R] | None] = [None] * len(chunks)
        pool: Executor
        forked = via == "processes"
        if forked:
            # A dead worker leaves the pool's feeder thread writing into a pipe nobody reads: EPIPE, not the
            # SIGPIPE the CLI restores to its default (which would end the whole command), while the pool lives.
            sigpipe = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            gc.freeze()  # the workers' collector leaves the inherited heap alone: no copy-on-write of all of it
            pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=_die_with, initargs=(os.getpid(),)
            )
        else:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="sslreconciler-map")
        try:
            futures: list[Future[list[R]]] = []
            try:
                futures = [pool.submit(_run_chunk, fn, chunk) for chunk in chunks]
            except Exception:  # a worker could not be started (fork: EAGAIN, ENOMEM): the loop does it all
                futures = []
            for i, future in enumerate(futures):
                try:
                    done[i] = future.result()
                except Exception:  # a worker died or fn raised: run here again, the serial result or error
                    continue
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if forked:
                signal.signal(signal.SIGPIPE, signal.SIG_DFL if sigpipe is None else sigpipe)
                gc.unfreeze()
        out: list[R] = []
        for chunk, result in zip(chunks, done, strict=True):
            out.extend(_run_chunk(fn, chunk) if result is None else result)
        return out
