"""The one way in: every command that reconciles (``reconcile``, ``check``, ``web install|rollback``,
``pki install-bundle``, ``acme renew``) and the daemon go through ``Reconciler.run``, so they cannot differ.

It owns what outlives one reconcile (the process memo, the state-dir record, the last report) and the
sequence: open the ssl dir once, take the writer lock (not for a dry run), apply the command's change to
the sources (``change``), observe, decide, execute, settle, save. The change runs inside the same lock
acquisition as the reconcile, so no other writer comes between the sources a command writes and the
stores built from them. Whatever breaks inside becomes an ``internal`` finding and a failed report, never an
exception. Hooks are returned as due; ``run_hooks_now`` runs them for a one-shot, the daemon queues
them on its worker.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sslreconciler.config.desired import DesiredState, Hook
from sslreconciler.model.errors import ConfigError, SslReconcilerError
from sslreconciler.model.findings import Finding, FindingCode, error
from sslreconciler.reconcile.decide import Context, decide
from sslreconciler.reconcile.execute import execute
from sslreconciler.reconcile.hook_record import write_hook_record
from sslreconciler.reconcile.hooks import run_hook
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.observe import observe
from sslreconciler.reconcile.parallel import ParallelMap
from sslreconciler.reconcile.record import load_record, save_record, save_report
from sslreconciler.reconcile.report import HookResult, Report
from sslreconciler.reconcile.settle import hooks_due, settle, written_outputs
from sslreconciler.reconcile.stat_index import StatIndex
from sslreconciler.rootread import open_ssl_dir
from sslreconciler.writer_lock import (
    WRITER_LOCK_WAIT_S,
    DirLocked,
    WriterLock,
    lock_for_writing,
    lock_holder,
    try_lock_for_writing,
)


def host_name(desired: DesiredState) -> str:
    return desired.hostname or socket.getfqdn()


@dataclass(slots=True)
class Outcome:
    report: Report
    hooks_due: list[tuple[Hook, tuple[str, ...]]] = field(default_factory=list)
    recheck_at: float | None = None  # wall clock: when the grace window of a pending error ends
    state_problem: str = ""  # the state dir could not be written: for the caller to say
    hooks_unseen: str = ""  # why the hooks' results could not be left for the daemon: for the caller to say
    busy: str | None = None  # run(lock_wait_s=0) found another writer: who ("" unknown); nothing was done
    change_said: str | None = None  # what the command's change said it did; None: it was not applied


# A command's change to the sources: given the ssl dir's descriptor (the writer lock held), it acts relative
# to it and returns what it did, for the operator. Raising (CommandError: refused) means nothing reconciled.
Change = Callable[[int], str]


class Reconciler:
    """Reconciles one ssl dir, again and again (the daemon) or once (a command)."""

    def __init__(
        self,
        ssl_dir: Path,
        state_dir: Path,
        desired_file: Path | str,
        grace_period: float = 0.0,
        memo: ReconcileCache | None = None,
        workers: int = 0,
    ) -> None:
        self.ssl_dir = ssl_dir
        self.state_dir = state_dir
        self.desired_file = str(desired_file)
        self.grace_period = grace_period
        # The state dir's record of what each store was last verified to hold spares a run from
        # opening the stores (PKCS#12 key derivation alone costs tens of milliseconds per store).
        self.memo = memo if memo is not None else load_record(state_dir)
        self.seen: dict[tuple[str, float], float] = {}  # (source, mtime) -> first seen: the grace clock
        self.parallel = ParallelMap(workers)  # the setting ``workers``: 0 one per core, 1 serial (parallel.py)

    @property
    def record_note(self) -> str:
        """Why the state dir's record was not believed (e.g. root on a dir the service user owns)."""
        return self.memo.record_note

    def run(
        self,
        desired: DesiredState,
        dry_run: bool = False,
        extra: Sequence[Finding] = (),
        lock_wait_s: float = WRITER_LOCK_WAIT_S,
        change: Change | None = None,
        full_read: bool = False,
    ) -> Outcome:
        """One reconcile. ``full_read``: read every trust file, believing no stat index (stat_index.py).

        ``lock_wait_s`` 0 (the daemon, which must keep answering while it waits): when
        another writer holds the lock, an Outcome with ``busy`` set at once, nothing read, saved or kept.

        ``change`` (a command's new sources; never with ``dry_run``) runs under the same lock, right before
        observe. What it raises lets go of the lock and propagates: nothing reconciled, nothing saved."""
        if change is not None and dry_run:
            raise ValueError("a dry run changes nothing")
        started, t0 = dt.datetime.now(dt.UTC), time.monotonic()

        def failed(finding: Finding, internal: bool = False) -> Outcome:
            report = Report(str(self.ssl_dir), started, time.monotonic() - t0, [], [*extra, finding], [], dry_run)
            report.internal_error = internal
            return Outcome(report)

        try:
            ssl_fd = open_ssl_dir(self.ssl_dir)  # resolved once: everything below works relative to it
        except OSError as exc:
            reason = {errno.ENOENT: "does not exist", errno.ENOTDIR: "is not a directory"}.get(
                exc.errno or 0, f"cannot be opened: {exc.strerror}"
            )
            return self._finish(failed(error(str(self.ssl_dir), reason, FindingCode.MISSING)), dry_run)
        lock: WriterLock | None = None
        refused: Exception | None = None
        said: str | None = None  # set once the change is in place, whatever the reconcile after it does
        try:
            if not dry_run:  # one writer per ssl dir: the daemon or a one-shot
                if lock_wait_s > 0:
                    lock = lock_for_writing(ssl_fd, str(self.ssl_dir), lock_wait_s)
                elif (lock := try_lock_for_writing(ssl_fd, str(self.ssl_dir))) is None:
                    holder = lock_holder(ssl_fd)
                    text = "not reconciled yet: another writer holds the lock" + (f" ({holder})" if holder else "")
                    busy = failed(error(str(self.ssl_dir), text, FindingCode.LOCKED))
                    busy.busy = holder
                    return busy
            if change is not None:
                try:
                    said = change(ssl_fd)
                except (SslReconcilerError, OSError) as exc:  # the command's refusal or its write error
                    refused = exc  # the caller's to say; anything else is a bug: the internal finding below
            if refused is None:
                outcome = self._run_at(ssl_fd, desired, dry_run, list(extra), started, t0, full_read)
        except DirLocked as exc:
            outcome = failed(error(str(self.ssl_dir), f"not reconciled: {exc.strerror}", FindingCode.LOCKED))
        except ConfigError:
            raise
        except Exception as exc:
            from sslreconciler.reconcile.internal_error import log_once

            where = log_once(exc, str(self.ssl_dir))  # the traceback, once per type and place
            # an OSError says errno and file; any other message (a ValueError's) may quote what was read
            detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else type(exc).__name__
            text = f"reconcile broke off unexpectedly ({detail}, raised at {where}); the rest of this run was skipped"
            outcome = failed(error(str(self.ssl_dir), text, FindingCode.INTERNAL), internal=True)
        finally:
            if lock is not None:
                lock.release()
            os.close(ssl_fd)
        if refused is not None:
            raise refused
        outcome.change_said = said
        return self._finish(outcome, dry_run)

    def _run_at(
        self,
        ssl_fd: int,
        desired: DesiredState,
        dry_run: bool,
        extra: list[Finding],
        started: dt.datetime,
        t0: float,
        full_read: bool = False,
    ) -> Outcome:
        self.memo.new_run()  # the memo keeps what the last two runs asked for, nothing older
        index = StatIndex() if full_read else self.memo.stat_index  # an empty index proves nothing unchanged
        observed = observe(self.ssl_dir, ssl_fd, desired, self.desired_file, self.seen, index)
        context = Context(host_name(desired), started, dry_run, self.grace_period, self.parallel)
        decision = decide(observed, desired, context, extra, self.memo)
        failures = [] if dry_run else execute(ssl_fd, decision.steps, decision.link_dirs, self.memo, decision.pem_dir)
        report = settle(decision, failures, str(self.ssl_dir), started, time.monotonic() - t0, dry_run)
        report.expiry_warning_days = desired.expiry_warning_days  # what "expiring" was judged by (monitoring)
        if dry_run:
            return Outcome(report, recheck_at=decision.recheck_at)
        written = written_outputs(decision.steps, failures)
        return Outcome(report, hooks_due(desired.hooks, written), decision.recheck_at)

    def _finish(self, outcome: Outcome, dry_run: bool) -> Outcome:
        if not dry_run:
            try:
                save_report(self.state_dir, outcome.report)
                save_record(self.memo, self.state_dir)
            except OSError as exc:
                outcome.state_problem = f"state dir: {exc.filename or self.state_dir}: {exc.strerror}"
        return outcome


def run_hooks_now(
    outcome: Outcome, ssl_dir: Path, default_timeout: float, daemon_state_dir: Path | None = None, command: str = ""
) -> list[HookResult]:
    """A one-shot's hooks, one at a time in the desired state's order, before the command exits; their
    results left in ``daemon_state_dir`` for the running daemon (reconcile/hook_record.py). Returns the
    results, and sets ``outcome.hooks_unseen`` when they could not be left there."""
    results = [run_hook(hook, changed, ssl_dir, default_timeout) for hook, changed in outcome.hooks_due]
    outcome.report.hook_results = results
    if daemon_state_dir is not None:
        outcome.hooks_unseen = write_hook_record(daemon_state_dir, command, results) or ""
    return results
