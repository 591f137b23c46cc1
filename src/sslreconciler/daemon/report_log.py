"""What the daemon's log says about each reconcile and hook run: the stores rewritten (old and new
certificate), each finding once when it appears and once when it clears, each hook's outcome."""

from __future__ import annotations

from typing import Any

from sslreconciler.model.findings import Level
from sslreconciler.reconcile.report import HookResult, Report


class ReportLog:
    def __init__(self, log: Any) -> None:
        self.log = log
        self._last_findings: set[tuple[str, str, str, bool]] = set()

    def reconciled(self, report: Report, trigger: str) -> None:
        changes = []
        for a in report.artifacts:
            if a.action != "written":
                continue
            old = a.previous.brief() if a.previous else None
            new = a.certificate.brief() if a.certificate else None
            changes.append(
                {
                    "artifact": a.name,
                    "why": a.message,
                    **({"old": old} if old else {}),
                    **({"new": new} if new and new != old else {}),
                }
            )
        links = [
            f"{link.directory}: +{len(link.added)} -{len(link.removed)}"
            for link in report.links
            if link.added or link.removed
        ]
        if changes or links:
            self.log.info(
                "reconciled: stores rewritten",
                trigger=trigger,
                status=report.status,
                changes=changes,
                hash_links=links,
                duration_ms=round(report.duration_s * 1000, 1),
            )
        self._findings(report)

    def _findings(self, report: Report) -> None:
        """New findings at their level (an error that may be a copy in progress as a warning), and
        findings gone since the last reconcile as cleared."""
        current = {
            (f.level.value, f.file, f.reason, f.level is Level.ERROR and f.file in report.pending_files)
            for f in report.findings
        }
        for level, file, reason, pending in sorted(current - self._last_findings):
            log = self.log.warning if level == "warning" or pending else self.log.error
            log("finding" + (" (pending: may be a copy in progress)" if pending else ""), file=file, reason=reason)
        still = {key[:3] for key in current}
        for _level, file, reason, _pending in sorted(self._last_findings):
            if (_level, file, reason) not in still:
                self.log.info("finding cleared", file=file, reason=reason)
        self._last_findings = current

    def hook_done(self, result: HookResult) -> None:
        log = self.log.info if result.outcome == "ok" else self.log.error
        log(
            "hook " + result.outcome,
            hook=result.hook,
            exit_code=result.exit_code,
            duration_ms=round(result.duration_s * 1000, 1),
            changed=list(result.changed),
            output=result.detail,
        )
