"""After execution: the decision and the steps that failed -> the report, and the hooks the writes call
for. Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sslreconciler.config.desired import Hook
from sslreconciler.model.findings import FindingCode, error
from sslreconciler.model.status import Status
from sslreconciler.reconcile.decide import Decision
from sslreconciler.reconcile.report import Action, ArtifactReport, Report
from sslreconciler.reconcile.steps import FixAttributes, MakeLink, Step, StepFailed, SwapPemSet, WriteFile, WriteStore


def settle(
    decision: Decision, failures: list[StepFailed], ssl_dir: str, started: dt.datetime, duration_s: float, dry_run: bool
) -> Report:
    """The report: the decision, with every step that failed turned into what it leaves behind."""
    artifacts = {a.name: a for a in decision.artifacts}
    findings = list(decision.findings)
    links = {r.directory: r for r in decision.links}
    for failure in failures:
        step, why = failure.step, failure.reason
        if isinstance(step, WriteStore):
            findings.append(error(step.name, f"cannot be written: {why}", FindingCode.WRITE_FAILED))
            before = artifacts[step.name]
            action: Action = "kept-last-good" if step.existed else "failed"
            status = Status.DEGRADED if step.existed else Status.FAILED
            artifacts[step.name] = ArtifactReport(
                step.name, before.kind, action, status, f"write failed ({why})", step.previous, sources=before.sources
            )
        elif isinstance(step, WriteFile | SwapPemSet):
            names = (step.name,) if isinstance(step, WriteFile) else step.written
            existed = {step.name} if isinstance(step, WriteFile) and step.existed else set()
            existed |= set(step.existed) if isinstance(step, SwapPemSet) else set()
            findings.append(
                error(
                    names[0] if isinstance(step, WriteFile) else step.directory,
                    f"cannot be written: {why}",
                    FindingCode.WRITE_FAILED,
                )
            )
            for name in names:
                before = artifacts[name]
                kept = name in existed
                artifacts[name] = replace(
                    before,
                    action="kept-last-good" if kept else "failed",
                    status=Status.DEGRADED if kept else Status.FAILED,
                    message=f"write failed ({why})",
                    certificate=before.previous if kept else None,
                )
        elif isinstance(step, FixAttributes):
            findings.append(error(step.name, f"mode/owner not fixed: {why}", FindingCode.ATTRIBUTES))
            before = artifacts[step.name]
            artifacts[step.name] = replace(before, status=Status.DEGRADED, message=f"mode/owner not fixed ({why})")
        elif isinstance(step, MakeLink):
            findings.append(
                error(f"{step.directory}/{step.name}", f"hash link cannot be made: {why}", FindingCode.LINK_FAILED)
            )
            links[step.directory].added.remove(step.name)
        else:
            text = f"stale hash link cannot be removed: {why}"
            findings.append(error(f"{step.directory}/{step.name}", text, FindingCode.LINK_FAILED))
            links[step.directory].removed.remove(step.name)
    report = Report(
        ssl_dir,
        started,
        duration_s,
        list(artifacts.values()),
        findings,
        list(links.values()),
        dry_run,
        decision.certificates,
    )
    report.pending_files = set(decision.pending_files)
    report.trust = decision.trust
    return report


def written_outputs(steps: list[Step], failures: list[StepFailed]) -> set[str]:
    """The outputs whose content a step actually rewrote: a store, the bundle, the PEM outputs changed."""
    failed = {id(f.step) for f in failures}
    written: set[str] = set()
    for step in steps:
        if id(step) in failed:
            continue
        if isinstance(step, WriteStore | WriteFile):
            written.add(step.name)
        elif isinstance(step, SwapPemSet):
            written.update(step.written)
    return written


def hooks_due(hooks: list[Hook], written: set[str]) -> list[tuple[Hook, tuple[str, ...]]]:
    """Each hook that follows one of the written artifacts, with the ones it follows."""
    return [(h, tuple(a for a in h.after if a in written)) for h in hooks if written.intersection(h.after)]
