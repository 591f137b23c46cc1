"""One reconcile, start to end: read sources, plan, apply, remember. Shared by the CLI and the daemon."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from sslreconciler.apply import apply_plan, resolve_ownership
from sslreconciler.cache import ReconcileCache
from sslreconciler.desired import DesiredState
from sslreconciler.findings import Finding, error
from sslreconciler.fsio import atomic_write, remove_stale_temp_files
from sslreconciler.inputs import gather_inputs
from sslreconciler.plan import make_plan
from sslreconciler.report import Report

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
    if not ssl_dir.is_dir():
        finding = error(str(ssl_dir), "is not a directory" if ssl_dir.exists() else "does not exist", "missing")
        return Report(str(ssl_dir), started, time.monotonic() - t0, [], [*extra, finding], [], dry_run)
    if not dry_run:
        remove_stale_temp_files(ssl_dir)
    owner = resolve_ownership(desired.permissions)
    inputs, findings = gather_inputs(ssl_dir, desired)
    findings = [*extra, *findings]
    plan = make_plan(desired, inputs, host_name(desired), started, findings, cache)
    return apply_plan(plan, ssl_dir, owner, dry_run, started, t0, cache)


def save_report(state_dir: Path, report: Report) -> None:
    """Keep the last report in the state dir (0700 dir, 0600 file: it names files, never secrets)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(state_dir / STATE_FILE, json.dumps(report.to_dict(), indent=2).encode(), 0o600)
