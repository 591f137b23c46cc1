"""The daemon's wait for another writer's lock: it only ever tries the lock, never blocks on it, so
the loop keeps pinging the watchdog and answering signals; it tries again every LOCK_RETRY_S, says
so in /health (re-published at most once a second, or when the holder changes) and logs an error
once the wait is longer than any one-shot would wait."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sslreconciler.daemon.document import LockWait
from sslreconciler.writer_lock import WRITER_LOCK_WAIT_S

LOCK_RETRY_S = 0.25  # how often a daemon waiting for the writer lock tries it again


@dataclass
class WriterWait:
    """A reconcile put off because another writer holds the lock."""

    trigger: str  # what the reconcile was for; the retry keeps it
    since: dt.datetime
    since_mono: float
    holder: str  # "pid N, NAME" from /proc/locks; "" when unknown
    retry_at: float = 0.0
    published_at: float = 0.0
    too_long: bool = False

    def busy_again(self, holder: str, now: float, log: Any) -> bool:
        """One more try found the lock held: set the next try; True when /health should say so anew."""
        changed = holder != self.holder or self.published_at == 0.0
        self.holder = holder
        if not self.too_long and now - self.since_mono >= WRITER_LOCK_WAIT_S:
            self.too_long = changed = True
            waited_s = round(now - self.since_mono)
            log.error("still waiting for the writer lock", holder=holder or "unknown", waited_s=waited_s)
        self.retry_at = now + LOCK_RETRY_S
        if changed or now - self.published_at >= 1.0:
            self.published_at = now
            return True
        return False

    def lock_wait(self, ssl_dir: str, now: float) -> LockWait:
        return LockWait(ssl_dir, self.since, now - self.since_mono, self.holder, self.trigger)
