"""What the daemon takes from its state dir when another process writes there: a one-shot's hook record
(reconcile/hook_record.py) and `acme renew`'s record (reconcile/acme_state.py). The watch of the state
dir (daemon/watch.py) calls ``take`` on the watchdog thread; the daemon then publishes at once, without a
reconcile (the record says what ran, the ssl dir's own events bring the reconcile).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from sslreconciler.daemon.publish import Publisher
from sslreconciler.daemon.watch import Watcher
from sslreconciler.model.findings import FindingCode, warning
from sslreconciler.reconcile.acme_state import RECORD as ACME_RECORD
from sslreconciler.reconcile.hook_record import HOOK_RECORD, BadHookRecord, read_hook_record
from sslreconciler.reconcile.report import HookResult

NEWS = frozenset({HOOK_RECORD, ACME_RECORD})  # the state dir's names whose change is news for /health


def take_hook_record(state_dir: Path, publisher: Publisher, on_new: Callable[[HookResult], None]) -> None:
    """Read the hook record and show its results; ``on_new`` for each run not seen before (counted and
    logged once). A record that cannot be believed is a finding (code hook-record) until a good one."""
    try:
        results = read_hook_record(state_dir)
    except BadHookRecord as exc:
        publisher.hook_record_problem = warning(
            str(state_dir / HOOK_RECORD),
            f"the one-shot commands' hook record {exc}; their hook runs are not shown. Remove the file "
            "(the next command that runs a hook writes it again).",
            FindingCode.HOOK_RECORD,
        )
        return
    publisher.hook_record_problem = None
    for result in publisher.offered(results):
        on_new(result)


class StateNews:
    """The daemon's side: watch its state dir, take the hook record, publish on news."""

    def __init__(self, publisher: Publisher, on_new: Callable[[HookResult], None], publish: Callable[[], None]) -> None:
        self.publisher, self.on_new, self.publish = publisher, on_new, publish
        self.state_dir: Path | None = None

    def watch(self, state_dir: Path, watcher: Watcher) -> None:
        """Watch ``state_dir`` (made now if missing, so the watch exists) from the watcher's next
        ``configure``, and take the hook record a one-shot left while the daemon was not running."""
        with contextlib.suppress(OSError):
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state_dir = state_dir
        watcher.watch_state(state_dir, NEWS)
        take_hook_record(state_dir, self.publisher, self.on_new)

    def notice(self, name: str) -> None:
        """On the watchdog thread: a one-shot wrote its hook record, or `acme renew` its record: show it now."""
        if name == HOOK_RECORD and self.state_dir is not None:
            take_hook_record(self.state_dir, self.publisher, self.on_new)
        with contextlib.suppress(Exception):  # a bug in publishing must not kill the watch's thread
            self.publish()
