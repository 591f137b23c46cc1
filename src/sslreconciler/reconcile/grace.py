"""The grace window: a bad source that was modified moments ago is probably a copy in progress.

An admin copying key then certificate, or a slow non-atomic copy, passes through states where the
pair does not parse or does not match. Within the window such errors are reported ``pending``, not
``degraded``, and re-checked when the window ends. Nothing is written from them either way.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sslreconciler.model.findings import Level
from sslreconciler.reconcile.report import Report

# Findings a half-written file produces. A signature or trust failure is not one of them.
TRANSIENT_CODES = frozenset({"garbage", "empty", "key-mismatch", "missing", "no-certificate", "no-key", "too-large"})


def _mtime(path: Path) -> float | None:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return None


def apply_grace(report: Report, ssl_dir: Path, grace: float, now: float | None = None) -> float | None:
    """Mark young transient errors pending; the wall-clock time to look again, or None."""
    if grace <= 0:
        return None
    now = time.time() if now is None else now
    recheck: float | None = None
    for artifact in report.artifacts:
        errors = [f for f in report.findings if f.level is Level.ERROR and f.file in artifact.sources]
        if not errors or any(f.code not in TRANSIENT_CODES for f in errors):
            continue
        mtimes = [m for m in (_mtime(ssl_dir / s) for s in artifact.sources) if m is not None]
        youngest = max(mtimes, default=None)
        if youngest is None or now - youngest >= grace:
            continue
        report.pending_files.update(f.file for f in errors)
        if artifact.status in ("degraded", "failed") and artifact.action in ("kept-last-good", "failed"):
            artifact.status = "pending"
            artifact.message = f"pending: a source changed {now - youngest:.1f} s ago; {artifact.message}"
        until = youngest + grace
        recheck = until if recheck is None else min(recheck, until)
    return recheck
