"""The daemon's Reconciler and how it reads the trust files: through the stat index on a change and on
most resyncs, in full on every ``full_read_every``-th resync (level-triggered on content, not on stat)."""

from __future__ import annotations

from collections.abc import Sequence

from sslreconciler.config.desired import DesiredState
from sslreconciler.config.settings import Settings
from sslreconciler.daemon.schedule import full_read_due
from sslreconciler.model.findings import Finding
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.reconciler import Outcome, Reconciler


class Reconciling:
    """The same Reconciler every command uses, kept for its memo (and its stat index), and the resyncs done."""

    def __init__(self, settings: Settings, memo: ReconcileCache | None = None, resyncs: int = 0) -> None:
        self.reconciler = Reconciler(
            settings.ssl_dir,
            settings.resolved_state_dir(),
            settings.desired_state,
            settings.grace_period,
            memo or ReconcileCache(),  # a long-running process remembers what it verified itself
            settings.workers,
        )
        self.full_read_every = settings.full_read_every
        self.resyncs = resyncs  # resyncs reconciled so far (one that found the lock taken is not counted)

    @property
    def memo(self) -> ReconcileCache:
        return self.reconciler.memo

    def run(self, desired: DesiredState, extra: Sequence[Finding], trigger: str) -> Outcome:
        """One reconcile, never waiting for the lock; a resync reads in full when its turn has come."""
        resync = trigger == "resync"
        full_read = resync and full_read_due(self.resyncs + 1, self.full_read_every)
        outcome = self.reconciler.run(desired, extra=extra, lock_wait_s=0, full_read=full_read)
        if resync and outcome.busy is None:
            self.resyncs += 1
        return outcome
