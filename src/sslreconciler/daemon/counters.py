"""What the daemon counts for /health and /metrics: reconciles, their errors, file events, writes per
artifact and hook outcomes per hook. Plain sums; the loop and the hook worker feed them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sslreconciler.model.status import Status
from sslreconciler.reconcile.report import HookResult, Report


@dataclass
class Counters:
    reconciles: int = 0
    reconcile_errors: int = 0
    events: int = 0
    writes_by_artifact: dict[str, int] = field(default_factory=dict)
    hook_runs: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_reconcile(self, report: Report) -> None:
        self.reconciles += 1
        if report.status in (Status.DEGRADED, Status.FAILED):
            self.reconcile_errors += 1
        for name in {a.name for a in report.artifacts if a.action == "written"}:
            self.writes_by_artifact[name] = self.writes_by_artifact.get(name, 0) + 1

    def count_hook(self, result: HookResult) -> None:
        by = self.hook_runs.setdefault(result.hook, {})
        by[result.outcome] = by.get(result.outcome, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "reconciles": self.reconciles,
            "reconcile_errors": self.reconcile_errors,
            "events": self.events,
            "writes": sum(self.writes_by_artifact.values()),
            "writes_by_artifact": dict(self.writes_by_artifact),
            "hook_runs": {k: dict(v) for k, v in self.hook_runs.items()},
        }
