"""The daemon's health document, built in one place from the last report, the hooks' last results,
the counters, the ACME record and the desired-state problem. /health, /metrics, `status` and the
sd_notify STATUS line all read this one value (model.health_document says its shape).
"""

from __future__ import annotations

import os
from typing import Any, cast

from sslreconciler import __version__
from sslreconciler.model.health_document import HealthDocument
from sslreconciler.model.status import Status, worst
from sslreconciler.reconcile.report import HookResult, Report


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
) -> HealthDocument:
    """The document for the last reconcile. A failed hook or an overdue ACME renewal is a warning:
    the stores are right, but a service may not have picked them up, or soon will not be able to."""
    doc = report.to_dict()
    status = report.status
    failed_hooks = [h for h in hooks.values() if h.outcome != "ok"]
    if failed_hooks:
        status = worst([status, Status.WARNING])
    if acme is not None and "problem" in acme:  # an unusable ACME record: a finding, no acme part
        doc["findings"] = [*doc.get("findings", []), acme["problem"]]
        status = worst([status, Status.WARNING])
    elif acme is not None:
        doc["acme"] = acme
        if acme.get("overdue"):
            status = worst([status, Status.WARNING])
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
            "hooks": {label: r.to_dict() for label, r in sorted(hooks.items())},
            "desired_state": {"file": desired_file, "problem": desired_problem},
        }
    )
    return cast(HealthDocument, doc)
