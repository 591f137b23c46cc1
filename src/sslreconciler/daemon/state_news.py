"""What the daemon takes from its state dir when another process writes there: a one-shot's hook record
(reconcile/hook_record.py) and `acme renew`'s record (reconcile/acme_state.py). The watch of the state
dir (daemon/watch.py) calls ``take`` on the watchdog thread; the daemon then publishes at once, without a
reconcile (the record says what ran, the ssl dir's own events bring the reconcile).

The daemon keeps each configured hook's newest known run in its own record there (``hook-results-daemon.json``,
the same format and trust rules), so after a restart a one-shot's older record neither shows over a newer
run nor is counted again. Results for hooks the desired state does not name are ignored.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path

from sslreconciler.daemon.publish import Publisher
from sslreconciler.daemon.watch import Watcher
from sslreconciler.model.findings import FindingCode, warning
from sslreconciler.reconcile.acme_state import RECORD as ACME_RECORD
from sslreconciler.reconcile.hook_record import (
    DAEMON_HOOK_RECORD,
    HOOK_RECORD,
    BadHookRecord,
    read_hook_record,
    write_hook_record,
)
from sslreconciler.reconcile.report import HookResult

NEWS = frozenset({HOOK_RECORD, ACME_RECORD})  # the state dir's names whose change is news for /health


def take_hook_record(
    state_dir: Path, publisher: Publisher, labels: frozenset[str], on_new: Callable[[HookResult], None]
) -> bool:
    """Read the hook record and show its results; ``on_new`` for each run not seen before (counted and
    logged once); True when any was. A record that cannot be believed is a finding (code hook-record)
    until a good one."""
    try:
        results = read_hook_record(state_dir)
    except BadHookRecord as exc:
        publisher.hook_record_problem = warning(
            str(state_dir / HOOK_RECORD),
            f"the one-shot commands' hook record {exc}; their hook runs are not shown. Remove the file "
            "(the next command that runs a hook writes it again).",
            FindingCode.HOOK_RECORD,
        )
        return False
    publisher.hook_record_problem = None
    taken = publisher.offered(results, labels)
    for result in taken:
        on_new(result)
    return bool(taken)


class StateNews:
    """The daemon's side: watch its state dir, take the hook record, publish on news."""

    def __init__(
        self,
        publisher: Publisher,
        labels: Callable[[], frozenset[str]],
        on_new: Callable[[HookResult], None],
        publish: Callable[[], None],
    ) -> None:
        self.publisher, self.labels, self.on_new, self.publish = publisher, labels, on_new, publish
        self.state_dir: Path | None = None
        self._save_lock = threading.Lock()

    def watch(self, state_dir: Path, watcher: Watcher) -> None:
        """Watch ``state_dir`` (made now if missing, so the watch exists) from the watcher's next
        ``configure``; show the daemon's own record of the newest runs, then take the hook record a
        one-shot left while the daemon was not running."""
        with contextlib.suppress(OSError):
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir = state_dir
        watcher.watch_state(state_dir, NEWS)
        with contextlib.suppress(BadHookRecord):  # not believed: as if the daemon had never run
            self.publisher.remembered(read_hook_record(state_dir, DAEMON_HOOK_RECORD), self.labels())
        self.take()

    def take(self) -> None:
        """Take the hook record now (a new one, or the state dir was recreated); remember what was new."""
        if self.state_dir is not None and take_hook_record(self.state_dir, self.publisher, self.labels(), self.on_new):
            self.save()

    def rewatch_if_moved(self, watcher: Watcher) -> None:
        """Re-make the watches when the ssl dir or the state dir was recreated; take the record there."""
        if watcher.needs_rewatch():
            watcher.rewatch()
            self.take()

    def own_result(self, result: HookResult) -> None:
        """A hook the daemon ran: shown, and kept in its own record."""
        self.publisher.hook_done(result)
        self.save()

    def save(self) -> None:
        """Keep each hook's newest known run in the daemon's own record (any thread)."""
        if self.state_dir is None:
            return
        with self._save_lock, contextlib.suppress(Exception):  # a full disk must not stop the hooks
            write_hook_record(self.state_dir, "daemon", self.publisher.newest(), DAEMON_HOOK_RECORD)

    def notice(self, name: str) -> None:
        """On the watchdog thread: a one-shot wrote its hook record, or `acme renew` its record: show it now."""
        if name == HOOK_RECORD:
            self.take()
        with contextlib.suppress(Exception):  # a bug in publishing must not kill the watch's thread
            self.publish()
