"""When the daemon acts next, and why: a pure function of its timers (no clock read, no I/O, no
threads; every time is an argument, in monotonic seconds), table-tested in tests/test_schedule_table.py.

The rules (docs/operations.md, docs/reliability.md):
- a file event starts a quiet period; each further event restarts it; the reconcile runs when the
  quiet period ends (EVENT), or ``max_wait`` after the first event if events keep coming (MAX_WAIT);
- a full reconcile runs every ``resync_interval`` after the last one (RESYNC);
- a reconcile that saw young bad sources asks to be run again when their grace ends (GRACE);
- a reconcile put off by another writer's lock is tried again at ``lock_retry_at`` (LOCK_RETRY);
- under systemd's watchdog, WATCHDOG=1 is sent every ``watchdog_interval`` whatever else is due,
  so a long wait for the lock never gets the daemon killed (WATCHDOG);
- SIGHUP reloads (RELOAD) before anything else is done, SIGTERM stops (STOP) before even a ping.
At most one reconcile-or-reload is due at a time, in the order of ``ACTIONS``; the others stay due
and come next time round.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

NOW = float("-inf")  # the deadline of something due at once (a signal's flag)


class Trigger(enum.StrEnum):
    STOP = "stop"  # SIGTERM or SIGINT
    RELOAD = "reload"  # SIGHUP
    WATCHDOG = "watchdog"  # time to tell systemd the loop is alive
    EVENT = "event"  # the quiet period after the last file event ended
    MAX_WAIT = "max wait"  # events kept coming: the first one has waited max_wait
    RESYNC = "resync"  # resync_interval since the last reconcile
    GRACE = "grace"  # young bad sources' grace window ended: look again
    LOCK_RETRY = "lock retry"  # another writer held the lock: try it again


ACTIONS: tuple[Trigger, ...] = (
    Trigger.STOP,
    Trigger.RELOAD,
    Trigger.EVENT,
    Trigger.MAX_WAIT,
    Trigger.RESYNC,
    Trigger.GRACE,
    Trigger.LOCK_RETRY,
)  # which one is done when several are due; WATCHDOG goes alongside any of them


@dataclass(frozen=True, slots=True)
class Timing:
    """The intervals, from the settings (and the watchdog's from systemd's environment)."""

    quiet_period: float
    max_wait: float
    resync_interval: float
    watchdog_interval: float | None = None  # None: no watchdog to ping


@dataclass(frozen=True, slots=True)
class Timers:
    """The daemon's state as the scheduler sees it: moments in monotonic seconds, None when unset."""

    next_resync: float
    first_event: float | None = None  # the first file event not reconciled yet
    last_event: float | None = None  # the latest such event
    next_ping: float | None = None  # None without a watchdog
    grace_at: float | None = None  # from the last outcome's recheck time
    lock_retry_at: float | None = None  # while waiting for another writer's lock
    reload: bool = False
    stop: bool = False


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float  # NOW when due at once
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class Due:
    """What to do now: ping the watchdog or not, and at most one action (None: go back to waiting)."""

    ping: bool
    action: Trigger | None


def deadlines(timers: Timers, timing: Timing) -> list[Deadline]:
    """Every pending deadline, each with its trigger, in the order of ``ACTIONS`` then WATCHDOG."""
    out = []
    if timers.stop:
        out.append(Deadline(NOW, Trigger.STOP))
    if timers.reload:
        out.append(Deadline(NOW, Trigger.RELOAD))
    if timers.first_event is not None:
        quiet_end = (timers.last_event or timers.first_event) + timing.quiet_period
        longest = timers.first_event + timing.max_wait
        out.append(Deadline(quiet_end, Trigger.EVENT) if quiet_end <= longest else Deadline(longest, Trigger.MAX_WAIT))
    out.append(Deadline(timers.next_resync, Trigger.RESYNC))
    if timers.grace_at is not None:
        out.append(Deadline(timers.grace_at, Trigger.GRACE))
    if timers.lock_retry_at is not None:
        out.append(Deadline(timers.lock_retry_at, Trigger.LOCK_RETRY))
    if timers.next_ping is not None and timing.watchdog_interval is not None:
        out.append(Deadline(timers.next_ping, Trigger.WATCHDOG))
    return out


def next_deadline(timers: Timers, timing: Timing) -> Deadline:
    """The earliest deadline and why; at a tie the first in ``ACTIONS`` (then WATCHDOG)."""
    return min(deadlines(timers, timing), key=lambda d: d.at)  # min keeps the first of equals


def due(timers: Timers, timing: Timing, now: float) -> Due:
    """What is due at ``now``: WATCHDOG alongside the first due action (STOP alone: no last ping)."""
    reached = [d.trigger for d in deadlines(timers, timing) if d.at <= now]
    if Trigger.STOP in reached:
        return Due(False, Trigger.STOP)
    action = next((t for t in reached if t is not Trigger.WATCHDOG), None)
    return Due(Trigger.WATCHDOG in reached, action)


def full_read_due(resync: int, every: int) -> bool:
    """Does the ``resync``-th resync (counted from 1) read every trust file in full (setting
    ``full_read_every``)? Every other reconcile believes the stat index (reconcile/stat_index.py)."""
    return every <= 1 or resync % every == 0
