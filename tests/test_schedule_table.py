"""Table tests of the daemon's scheduler (daemon/schedule.py), without a disk, a thread or a clock: the
daemon's timers and a moment go in; what is due then, and the next deadline with its trigger, come out.

Quiet period 0.5 s, max wait 2 s, resync every 300 s, watchdog every 10 s (when there is one). The last
tests hold the table to its promise (every trigger appears in some row) and replay an event storm
through the scheduler the way the loop does (docs/reliability.md: one reconcile per max wait while it
lasts, one after it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from sslreconciler.daemon.schedule import (
    ACTIONS,
    NOW,
    Deadline,
    Due,
    Timers,
    Timing,
    Trigger,
    deadlines,
    due,
    next_deadline,
)

T = Timing(quiet_period=0.5, max_wait=2.0, resync_interval=300.0, watchdog_interval=10.0)
NO_WATCHDOG = dataclasses.replace(T, watchdog_interval=None)
IDLE = Timers(next_resync=300.0)


@dataclass(frozen=True)
class Row:
    name: str
    timers: Timers
    now: float
    due: Due  # what the loop does at ``now``
    next: Deadline  # what it waits for next (before doing it)
    timing: Timing = T


def events(first: float, last: float, **more: Any) -> Timers:
    return dataclasses.replace(IDLE, first_event=first, last_event=last, **more)


E, M, R, G, L, W = Trigger.EVENT, Trigger.MAX_WAIT, Trigger.RESYNC, Trigger.GRACE, Trigger.LOCK_RETRY, Trigger.WATCHDOG

ROWS = [
    # -- nothing pending ------------------------------------------------------------------------------
    Row("idle: nothing due, resync next", IDLE, 100.0, Due(False, None), Deadline(300.0, R)),
    Row("resync interval reached", IDLE, 300.0, Due(False, R), Deadline(300.0, R)),
    # -- file events: quiet period and max wait -------------------------------------------------------
    Row("one event, inside the quiet period", events(10.0, 10.0), 10.3, Due(False, None), Deadline(10.5, E)),
    Row("one event, quiet period over", events(10.0, 10.0), 10.5, Due(False, E), Deadline(10.5, E)),
    Row("a second event restarts the quiet period", events(10.0, 10.4), 10.6, Due(False, None), Deadline(10.9, E)),
    Row(
        "events keep coming past max wait: reconcile anyway",
        events(10.0, 11.9),
        12.0,
        Due(False, M),
        Deadline(12.0, M),
    ),
    Row("events keep coming, max wait not reached", events(10.0, 11.7), 11.9, Due(False, None), Deadline(12.0, M)),
    Row(
        "an event without a last time counts from the first",
        dataclasses.replace(IDLE, first_event=10.0),
        10.5,
        Due(False, E),
        Deadline(10.5, E),
    ),
    Row(
        "an event and resync both due: the event's reconcile",
        events(299.0, 299.0),
        300.0,
        Due(False, E),
        Deadline(299.5, E),
    ),
    # -- the grace window --------------------------------------------------------------------------------
    Row(
        "grace earlier than resync", dataclasses.replace(IDLE, grace_at=50.0), 20.0, Due(False, None), Deadline(50.0, G)
    ),
    Row("grace window ended", dataclasses.replace(IDLE, grace_at=50.0), 50.0, Due(False, G), Deadline(50.0, G)),
    Row(
        "grace later than resync: resync first",
        dataclasses.replace(IDLE, grace_at=400.0),
        20.0,
        Due(False, None),
        Deadline(300.0, R),
    ),
    Row(
        "grace and resync at the same moment: resync",
        dataclasses.replace(IDLE, grace_at=300.0),
        300.0,
        Due(False, R),
        Deadline(300.0, R),
    ),
    Row(
        "a pending event before the grace window ends",
        events(40.0, 40.0, grace_at=50.0),
        40.5,
        Due(False, E),
        Deadline(40.5, E),
    ),
    # -- another writer holds the lock ------------------------------------------------------------------
    Row(
        "lock busy: wait for the retry",
        dataclasses.replace(IDLE, lock_retry_at=20.25),
        20.1,
        Due(False, None),
        Deadline(20.25, L),
    ),
    Row(
        "lock busy: retry due", dataclasses.replace(IDLE, lock_retry_at=20.25), 20.25, Due(False, L), Deadline(20.25, L)
    ),
    Row("lock free again (no retry pending): back to resync", IDLE, 20.5, Due(False, None), Deadline(300.0, R)),
    Row(
        "lock busy and an event's quiet period ends first",
        events(20.0, 20.0, lock_retry_at=20.75),
        20.5,
        Due(False, E),
        Deadline(20.5, E),
    ),
    Row(
        "lock busy and grace ended: grace before the retry",
        dataclasses.replace(IDLE, grace_at=20.0, lock_retry_at=20.0),
        20.0,
        Due(False, G),
        Deadline(20.0, G),
    ),
    # -- signals ------------------------------------------------------------------------------------------
    Row(
        "reload during the quiet period: reload first",
        events(10.0, 10.0, reload=True),
        10.1,
        Due(False, Trigger.RELOAD),
        Deadline(NOW, Trigger.RELOAD),
    ),
    Row("reload done, the event still pending", events(10.0, 10.0), 10.1, Due(False, None), Deadline(10.5, E)),
    Row(
        "reload while the lock is busy",
        dataclasses.replace(IDLE, lock_retry_at=20.25, reload=True),
        20.3,
        Due(False, Trigger.RELOAD),
        Deadline(NOW, Trigger.RELOAD),
    ),
    Row(
        "stop beats a reload and a due reconcile",
        events(10.0, 10.0, reload=True, stop=True),
        11.0,
        Due(False, Trigger.STOP),
        Deadline(NOW, Trigger.STOP),
    ),
    # -- the watchdog --------------------------------------------------------------------------------------
    Row(
        "watchdog ping due, nothing else",
        dataclasses.replace(IDLE, next_ping=10.0),
        10.0,
        Due(True, None),
        Deadline(10.0, W),
    ),
    Row("watchdog ping next", dataclasses.replace(IDLE, next_ping=10.0), 5.0, Due(False, None), Deadline(10.0, W)),
    Row(
        "watchdog while waiting for the lock: ping, no retry yet",
        dataclasses.replace(IDLE, next_ping=20.0, lock_retry_at=20.25),
        20.1,
        Due(True, None),
        Deadline(20.0, W),
    ),
    Row(
        "watchdog while waiting for the lock: ping and retry",
        dataclasses.replace(IDLE, next_ping=20.0, lock_retry_at=20.25),
        20.3,
        Due(True, L),
        Deadline(20.0, W),
    ),
    Row(
        "watchdog and a reload together",
        dataclasses.replace(IDLE, next_ping=10.0, reload=True),
        10.0,
        Due(True, Trigger.RELOAD),
        Deadline(NOW, Trigger.RELOAD),
    ),
    Row(
        "watchdog and an event at the same moment: the event is named",
        events(9.5, 9.5, next_ping=10.0),
        10.0,
        Due(True, E),
        Deadline(10.0, E),
    ),
    Row(
        "stop: no last ping",
        dataclasses.replace(IDLE, next_ping=10.0, stop=True),
        10.0,
        Due(False, Trigger.STOP),
        Deadline(NOW, Trigger.STOP),
    ),
    Row(
        "no watchdog configured: a stale ping time is ignored",
        dataclasses.replace(IDLE, next_ping=10.0),
        10.0,
        Due(False, None),
        Deadline(300.0, R),
        timing=NO_WATCHDOG,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_due(row: Row) -> None:
    assert due(row.timers, row.timing, row.now) == row.due


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_next_deadline(row: Row) -> None:
    assert next_deadline(row.timers, row.timing) == row.next


def test_every_trigger_has_a_row() -> None:
    seen = {r.due.action for r in ROWS} | {r.next.trigger for r in ROWS} | {W for r in ROWS if r.due.ping}
    assert set(Trigger) <= seen, set(Trigger) - seen
    assert set(ACTIONS) | {W} == set(Trigger)  # every trigger is an action or the ping that goes beside one


def test_deadlines_name_every_pending_timer_once() -> None:
    everything = Timers(300.0, 10.0, 10.4, 10.0, 50.0, 20.25, reload=True, stop=True)
    assert [d.trigger for d in deadlines(everything, T)] == [Trigger.STOP, Trigger.RELOAD, E, R, G, L, W]


def _storm(arrivals: list[float], until: float, timing: Timing = T) -> list[tuple[float, Trigger]]:
    """Run the scheduler as the loop does, over a list of file events: wait for the next deadline or the
    next event (a wake-up), ask what is due, reconcile. The reconciles, with their moment and trigger."""
    timers, now, out = IDLE, 0.0, []
    pending = sorted(arrivals)
    while now < until:
        now = min(next_deadline(timers, timing).at, pending[0] if pending else until, until)
        while pending and pending[0] <= now:
            at = pending.pop(0)
            first = timers.first_event if timers.first_event is not None else at
            timers = dataclasses.replace(timers, first_event=first, last_event=at)
        action = due(timers, timing, now).action
        if action is not None:
            out.append((round(now, 6), action))
            timers = dataclasses.replace(timers, first_event=None, last_event=None, next_resync=now + 300.0)
    return out


def test_an_event_storm_reconciles_once_per_max_wait_and_once_after() -> None:
    storm = [k / 10 for k in range(50)]  # an event every 0.1 s for 5 s
    assert _storm(storm, 10.0) == [(2.0, M), (4.1, M), (5.4, E)]


def test_a_burst_shorter_than_max_wait_reconciles_once() -> None:
    assert _storm([1.0, 1.2, 1.3], 10.0) == [(1.8, E)]
