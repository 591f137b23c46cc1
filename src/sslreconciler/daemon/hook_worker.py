"""The daemon's hook worker: hooks run one at a time on their own thread, so a slow or hanging hook
never delays the next reconcile; a hook already queued is not queued twice."""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
from pathlib import Path
from typing import Any

from sslreconciler.config.desired import Hook
from sslreconciler.reconcile.hooks import run_hook
from sslreconciler.reconcile.report import HookResult


class HookRunner:
    """Runs hooks one at a time on a worker thread; a hook already queued is not queued twice."""

    def __init__(self, on_result: Any) -> None:
        self._queue: queue.Queue[tuple[Hook, tuple[str, ...], Path, float] | None] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._on_result = on_result
        self._thread = threading.Thread(target=self._work, name="hooks", daemon=True)
        self._thread.start()

    def submit(self, hook: Hook, changed: tuple[str, ...], ssl_dir: Path, timeout: float) -> None:
        with self._lock:
            if hook.label in self._queued:
                return
            self._queued.add(hook.label)
        self._queue.put((hook, changed, ssl_dir, timeout))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            hook, changed, ssl_dir, timeout = item
            with self._lock:
                self._queued.discard(hook.label)
            try:
                result = run_hook(hook, changed, ssl_dir, timeout)
            except Exception as exc:  # one bad hook must never stop the worker, and so every other hook
                started = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
                result = HookResult(hook.label, "error", started, 0.0, None, f"cannot run: {exc!r}"[:400], changed)
            with contextlib.suppress(Exception):
                self._on_result(result)

    def stop(self) -> None:
        self._queue.put(None)
