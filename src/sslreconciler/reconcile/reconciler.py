"""One reconcile, start to end: read sources, plan, apply, remember. Shared by the CLI and the daemon."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from sslreconciler.config.desired import DesiredState
from sslreconciler.fsio import (
    DirLocked,
    atomic_write_at,
    lock_for_writing,
    open_dir,
    opened_dir,
    remove_stale_temp_files,
)
from sslreconciler.model.errors import ConfigError
from sslreconciler.model.findings import Finding, error
from sslreconciler.reconcile.apply import apply_plan, resolve_ownership
from sslreconciler.reconcile.contents import make_plan
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.observe import gather_inputs
from sslreconciler.reconcile.report import Report

STATE_FILE = "last-report.json"


def host_name(desired: DesiredState) -> str:
    return desired.hostname or socket.getfqdn()


def reconcile(
    ssl_dir: Path,
    desired: DesiredState,
    dry_run: bool = False,
    extra: Sequence[Finding] = (),
    cache: ReconcileCache | None = None,
) -> Report:
    """Make ``ssl_dir``'s derived files right (or, with ``dry_run``, say what would change)."""
    started, t0 = dt.datetime.now(dt.UTC), time.monotonic()
    try:
        ssl_fd = open_dir(ssl_dir)  # resolved once: everything below works relative to it
    except OSError as exc:
        reason = "does not exist" if exc.errno == errno.ENOENT else "is not a directory"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            reason = f"cannot be opened: {exc.strerror}"
        finding = error(str(ssl_dir), reason, "missing")
        return Report(str(ssl_dir), started, time.monotonic() - t0, [], [*extra, finding], [], dry_run)
    try:
        if not dry_run:
            lock_for_writing(ssl_fd, str(ssl_dir))  # one writer per ssl dir: the daemon or a one-shot
        return _reconcile_at(ssl_dir, ssl_fd, desired, dry_run, extra, cache, started, t0)
    except DirLocked as exc:
        finding = error(str(ssl_dir), f"not reconciled: {exc.strerror}", "locked")
        return Report(str(ssl_dir), started, time.monotonic() - t0, [], [*extra, finding], [], dry_run)
    except ConfigError:
        raise
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError | ValueError) else type(exc).__name__
        finding = error(
            str(ssl_dir), f"reconcile broke off unexpectedly ({detail}); the rest of this run was skipped", "internal"
        )
        report = Report(str(ssl_dir), started, time.monotonic() - t0, [], [*extra, finding], [], dry_run)
        report.internal_error = True
        return report
    finally:
        os.close(ssl_fd)


def _reconcile_at(
    ssl_dir: Path,
    ssl_fd: int,
    desired: DesiredState,
    dry_run: bool,
    extra: Sequence[Finding],
    cache: ReconcileCache | None,
    started: dt.datetime,
    t0: float,
) -> Report:
    if not dry_run:
        remove_stale_temp_files(ssl_fd)
    owner = resolve_ownership(desired.permissions)
    inputs, findings = gather_inputs(ssl_dir, desired, ssl_fd)
    findings = [*extra, *findings]
    plan = make_plan(desired, inputs, host_name(desired), started, findings, cache)
    return apply_plan(plan, ssl_dir, owner, dry_run, started, t0, cache, ssl_fd)


def save_report(state_dir: Path, report: Report) -> None:
    """Keep the last report in the state dir (0700 dir, 0600 file: it names files, never secrets)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with opened_dir(state_dir) as fd:  # written inside the directory's descriptor, never through a link
        atomic_write_at(fd, STATE_FILE, json.dumps(report.to_dict(), indent=2).encode(), 0o600)
