"""The daemon's health document, built in one place from the last report, the hooks' last results,
the counters, the ACME record and the desired-state problem. /health, /metrics, `status` and the
sd_notify STATUS line all read this one value (model.health_document says its shape).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import Any, cast

from sslreconciler import __version__
from sslreconciler.model.findings import Finding, FindingCode, error, warning
from sslreconciler.model.health_document import HealthDocument
from sslreconciler.model.status import Escalation, Status, escalated, parse_status, worst
from sslreconciler.reconcile.report import HookResult, Report
from sslreconciler.writer_lock import WRITER_LOCK_WAIT_S

NEVER_RUN = "never-run"  # a hook's outcome in /health while no run of it is known (the daemon's or a one-shot's)


def starting_document() -> HealthDocument:
    return {
        "status": Status.PENDING,
        "message": "starting: first reconcile not done yet",
        "artifacts": {},
        "findings": [],
        "version": __version__,
        "pid": os.getpid(),
    }


def health_document(
    report: Report,
    trigger: str,
    counters: dict[str, Any],
    hooks: dict[str, HookResult],
    desired_file: str,
    desired_problem: str | None,
    acme: dict[str, Any] | None,
    uptime_s: float,
    never_run: list[str] | None = None,
    extra_findings: list[Finding] | None = None,
) -> HealthDocument:
    """The document for the last reconcile, its status lowered by a failed hook or the ACME record as
    model.status.ESCALATIONS says. ``never_run``: configured hooks with no known run (outcome
    ``never-run``); ``extra_findings``: a refused hook record (code hook-record)."""
    doc = report.to_dict()
    failed_hooks = [h for h in hooks.values() if h.outcome != "ok"]
    escalations = [Escalation.HOOK_FAILED] if failed_hooks else []
    if extra_findings:
        doc["findings"] = [*doc.get("findings", []), *(f.to_dict() for f in extra_findings)]
        escalations.append(Escalation.HOOK_RECORD_UNUSABLE)
    shown_hooks = {label: r.to_dict() for label, r in hooks.items()}
    for label in never_run or []:
        shown_hooks[label] = {
            "hook": label,
            "outcome": NEVER_RUN,
            "started_at": None,
            "duration_s": 0.0,
            "exit_code": None,
            "detail": "",
            "changed": [],
        }
    if acme is not None and "problem" in acme:  # an unusable ACME record: a finding, no acme part
        doc["findings"] = [*doc.get("findings", []), acme["problem"]]
        escalations.append(Escalation.ACME_RECORD_UNUSABLE)
    elif acme is not None:
        doc["acme"] = acme
        if acme.get("overdue"):
            escalations.append(Escalation.ACME_OVERDUE)
    status = escalated(report.status, escalations)
    doc.pop("dry_run", None)
    doc.update(
        {
            "status": status,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(uptime_s, 1),
            "last_reconcile": {
                "started_at": doc.pop("started_at"),
                "duration_ms": doc.pop("duration_ms"),
                "trigger": trigger,
            },
            "counts": {**doc["counts"], **counters, "hook_failures": len(failed_hooks)},
            "hooks": dict(sorted(shown_hooks.items())),
            "desired_state": {"file": desired_file, "problem": desired_problem},
            "writer_lock": {"waiting": False},
        }
    )
    return cast(HealthDocument, doc)


@dataclass(frozen=True, slots=True)
class LockWait:
    """The daemon is waiting for another writer (a one-shot, or a stuck one) to let go of the ssl dir."""

    ssl_dir: str
    since: dt.datetime
    waited_s: float
    holder: str  # "pid N, NAME" from /proc/locks; "" when unknown
    trigger: str  # what the waiting reconcile is for


def with_lock_wait(doc: HealthDocument, wait: LockWait) -> HealthDocument:
    """``doc`` (a copy) saying the daemon waits for the writer lock: ``pending`` while a one-shot might
    still be at work, ``degraded`` once the wait is longer than a one-shot itself would wait."""
    too_long = wait.waited_s >= WRITER_LOCK_WAIT_S
    since = wait.since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    held_by = f" (held by {wait.holder})" if wait.holder else ""
    reason = f"not reconciled since {since}: waiting for the writer lock{held_by}" + (
        f"; for {wait.waited_s:.0f} s, longer than any writer should hold it" if too_long else ""
    )
    finding = (error if too_long else warning)(wait.ssl_dir, reason, FindingCode.LOCKED)
    out = cast(HealthDocument, dict(doc))
    out["findings"] = [*doc.get("findings", []), finding.to_dict()]
    now = parse_status(doc.get("status")) or Status.FAILED
    out["status"] = worst([now, Status.DEGRADED if too_long else Status.PENDING])
    out["writer_lock"] = {
        "waiting": True,
        "since": since,
        "waited_s": round(wait.waited_s, 1),
        "holder": wait.holder,
        "trigger": wait.trigger,
    }
    if "message" in doc:  # still starting: no reconcile done yet
        out["message"] = f"starting: waiting for the writer lock{held_by}"
    return out
