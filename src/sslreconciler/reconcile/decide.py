"""Decide: what the node observed + the desired state + now -> actions, findings, the report, when to look again.

Pure: no file, socket or process is touched here (the import contract in pyproject.toml holds it to
that). ``plan`` says what each store must hold; this module compares that with what each output
holds now (``existing``) and says what to do about it: write, fix mode/owner, keep the last good store
(and why), fail, make or remove a hash link (``steps``), and which young errors are still within the
grace window. ``settle`` then turns what execution reported back into the final report. A dry run is
"decide, then don't execute".
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field, replace

from cryptography import x509

from sslreconciler.config.desired import DesiredState
from sslreconciler.model.findings import Finding, FindingCode, Level, error
from sslreconciler.model.status import Status, worst
from sslreconciler.reconcile.existing import Existing, existing_content, plan_spec
from sslreconciler.reconcile.facts import CertFacts
from sslreconciler.reconcile.mapping import Mapper, serial_map
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.reconcile.pem import decide_bundle, decide_pem
from sslreconciler.reconcile.plan import ArtifactPlan, make_plan
from sslreconciler.reconcile.report import Action, ArtifactReport, CertInfo, LinkReport, SourceCert
from sslreconciler.reconcile.state import HASH_LINK, LinkDir, Observed, OutputFile, Ownership
from sslreconciler.reconcile.steps import FixAttributes, MakeLink, RemoveLink, Step, WriteStore
from sslreconciler.reconcile.trustset import trust_set
from sslreconciler.stores.entries import StoreContent

# Errors a half-written file produces (a copy in progress). A signature or trust failure is not one.
TRANSIENT_CODES = frozenset(
    {
        FindingCode.GARBAGE,
        FindingCode.EMPTY,
        FindingCode.KEY_MISMATCH,
        FindingCode.MISSING,
        FindingCode.NO_CERTIFICATE,
        FindingCode.NO_KEY,
        FindingCode.TOO_LARGE,
    }
)


@dataclass(frozen=True, slots=True)
class Context:
    hostname: str
    now: dt.datetime
    dry_run: bool = False
    grace_period: float = 0.0  # seconds a young transient error is reported pending (the daemon's)
    map: Mapper = serial_map  # how independent work runs: the reconciler's ParallelMap, else the loop


@dataclass(slots=True)
class Decision:
    steps: list[Step]
    artifacts: list[ArtifactReport]  # as they stand if every step succeeds
    findings: list[Finding]
    links: list[LinkReport]
    certificates: list[SourceCert]
    trust: dict[str, object]
    pending_files: set[str] = field(default_factory=set)
    recheck_at: float | None = None  # wall clock: the grace window ends, look again
    link_dirs: tuple[str, ...] = ()  # trust directories whose hash links are kept (temp links swept)
    pem_dir: str | None = None  # its versions but the current one are swept (what a killed swap left)


# --- one artifact ----------------------------------------------------------------------------------------


def _why_rewrite(plan: ArtifactPlan, out: OutputFile, existing: Existing) -> str:
    """Empty when the output already holds exactly what the plan wants."""
    assert plan.content is not None
    if out.kind == "absent":
        return "missing"
    if existing.content is None:
        return existing.why_unreadable or "unreadable"
    diff = plan.content.differences(existing.content)
    if diff:
        return diff
    if plan.kind == "pkcs12" and existing.profile != plan.profile:
        return f"PKCS#12 profile is {existing.profile or 'unknown'}, should be {plan.profile}"
    return ""


def _leaf(content: StoreContent | None) -> CertInfo | None:
    if content is None or not content.keys:
        return None
    return CertInfo.of(x509.load_der_x509_certificate(content.keys[0].chain[0]))


def _attributes_to_fix(st: os.stat_result, mode: int, owner: Ownership) -> FixAttributes | None:
    name = ""
    chmod = stat.S_IMODE(st.st_mode) != mode
    chown = (owner.uid is not None and st.st_uid != owner.uid) or (owner.gid is not None and st.st_gid != owner.gid)
    if not chmod and not chown:
        return None
    return FixAttributes(name, st, mode if chmod else None, owner.uid if chown else None, owner.gid if chown else None)


def decide_artifact(
    plan: ArtifactPlan,
    out: OutputFile,
    owner: Ownership,
    findings: list[Finding],
    dry_run: bool,
    memo: ReconcileCache | None = None,
) -> tuple[ArtifactReport, list[Step], list[Finding]]:
    """The report an artifact gets, the steps that make it so (none when it is right or blocked) and what
    it finds on the way. ``findings``: every finding so far, to judge the artifact's sources by."""
    related = [f for f in findings if f.file in plan.sources]
    status = worst(Status.DEGRADED if f.level is Level.ERROR else Status.WARNING for f in related)
    note = f" ({plan.note})" if plan.note else ""
    # the digest of everything the store must hold: only a state-dir record needs it (the daemon has none)
    spec = plan_spec(plan) if memo is not None and memo.record_key and plan.content is not None else None
    existing = existing_content(plan, out, memo, spec)

    def report(action: Action, status: Status, message: str, cert: CertInfo | None = None) -> ArtifactReport:
        return ArtifactReport(plan.name, plan.kind, action, status, message, cert, sources=plan.sources)

    in_the_way = out.kind == "not-a-file" or (out.kind == "unreadable" and out.stat is None)
    if plan.content is None:
        if out.kind != "absent" and not in_the_way and out.kind != "symlink":
            kept = f"kept the last good store: {plan.blocked_by}"
            return report("kept-last-good", worst([status, Status.DEGRADED]), kept, _leaf(existing.content)), [], []
        return report("failed", Status.FAILED, f"cannot be built: {plan.blocked_by}"), [], []
    if in_the_way:
        problem = error(
            plan.name, "is in the way: not a regular file, so it cannot be replaced", FindingCode.NOT_A_FILE
        )
        return report("failed", Status.FAILED, "an output path holds a non-file"), [], [problem]
    why = _why_rewrite(plan, out, existing)
    certificate = _leaf(plan.content)
    if not why:
        assert out.stat is not None
        fix = _attributes_to_fix(out.stat, plan.mode, owner)
        if memo is not None and spec is not None:
            memo.remember_verified(out.path, out.digest, spec)
        if fix is None:
            return report("unchanged", status, "up to date" + note, certificate), [], []
        fix = replace(fix, name=plan.name)
        message = "up to date; would fix mode/owner" if dry_run else f"fixed {fix.describe()}"
        return report("unchanged", status, message + note, certificate), [fix], []
    assert plan.password is not None
    write = WriteStore(
        plan.name,
        out.path,
        plan.kind,
        plan.content,
        plan.password,
        plan.profile,
        plan.mode,
        owner.uid,
        owner.gid,
        existed=out.kind != "absent",
        previous=_leaf(existing.content),
    )
    if dry_run:
        return report("would-write", status, f"would rewrite: {why}{note}", certificate), [write], []
    written = report("written", status, f"rewritten: {why}{note}", certificate)
    written.previous = write.previous
    return written, [write], []


# --- hash links --------------------------------------------------------------------------------------------


def decide_links(
    wanted: dict[str, dict[str, str]], have: dict[str, LinkDir]
) -> tuple[list[LinkReport], list[Step], list[Finding]]:
    """Each trust directory's <hash>.N links as ``wanted`` says: c_rehash numbering, nothing else touched
    (a name not shaped ``HASH_LINK`` is never made or removed, whatever the recorded facts said)."""
    reports: list[LinkReport] = []
    steps: list[Step] = []
    findings: list[Finding] = []
    for rel, links in wanted.items():
        there = have.get(rel, LinkDir(rel, problem="hash links not kept: not observed"))
        if there.problem:
            findings.append(error(rel, there.problem, FindingCode.LINKS))
            continue
        report = LinkReport(rel)
        for name, target in sorted(links.items()):
            if not HASH_LINK.match(name):
                continue
            if there.links.get(name) == target:
                report.unchanged += 1
            elif name in there.occupied:
                findings.append(
                    error(f"{rel}/{name}", "is a file where a hash link belongs; left alone", FindingCode.NOT_A_LINK)
                )
            else:
                report.added.append(name)
                steps.append(MakeLink(rel, name, target, fresh=name not in there.links))
        for name in sorted(n for n in set(there.links) - set(links) if HASH_LINK.match(n)):
            report.removed.append(name)
            steps.append(RemoveLink(rel, name))
        reports.append(report)
    return reports, steps, findings


# --- the grace window -----------------------------------------------------------------------------------


def apply_grace(
    artifacts: list[ArtifactReport], findings: list[Finding], observed: Observed, grace: float, now: float
) -> tuple[set[str], float | None]:
    """Young transient errors: the files to report pending, and the wall-clock time to look again.

    A source's age runs from its mtime, or from when this process first saw that mtime if that is
    earlier: a file touched with a future mtime is pending for one window, never for ever.
    """
    if grace <= 0:
        return set(), None
    pending: set[str] = set()
    recheck: float | None = None
    for artifact in artifacts:
        errors = [f for f in findings if f.level is Level.ERROR and f.file in artifact.sources]
        if not errors or any(f.code not in TRANSIENT_CODES for f in errors):
            continue
        changed = [
            min(source.mtime, observed.first_seen.get(name, now))
            for name in artifact.sources
            if (source := observed.inputs.files.get(name)) is not None and source.present
        ]
        youngest = max(changed, default=None)
        if youngest is None or now - youngest >= grace:
            continue
        pending.update(f.file for f in errors)
        if artifact.status in (Status.DEGRADED, Status.FAILED) and artifact.action in ("kept-last-good", "failed"):
            artifact.status = Status.PENDING
            artifact.message = f"pending: a source changed {now - youngest:.1f} s ago; {artifact.message}"
        until = youngest + grace
        recheck = until if recheck is None else min(recheck, until)
    return pending, recheck


# --- the whole node -------------------------------------------------------------------------------------


def decide(
    observed: Observed,
    desired: DesiredState,
    context: Context,
    extra: list[Finding] | None = None,
    memo: ReconcileCache | None = None,
) -> Decision:
    findings = [*(extra or []), *observed.findings]
    facts = CertFacts(memo, context.map)
    plan = make_plan(desired, observed.inputs, context.hostname, context.now, findings, facts)
    findings = plan.findings
    artifacts: list[ArtifactReport] = []
    steps: list[Step] = []
    for artifact in plan.artifacts:
        report, artifact_steps, found = decide_artifact(
            artifact, observed.outputs[artifact.name], observed.owner, findings, context.dry_run, memo
        )
        artifacts.append(report)
        steps.extend(artifact_steps)
        findings.extend(found)
    bundle_out = observed.outputs.get(desired.truststore.pem_bundle or "")
    for decided in (
        decide_bundle(desired, plan, bundle_out, observed.owner, findings, context.dry_run),
        decide_pem(desired, plan, observed.pem, observed.owner, findings, context.dry_run),
    ):
        artifacts.extend(decided[0])
        steps.extend(decided[1])
        findings.extend(decided[2])
    links, link_steps, link_findings = decide_links(plan.links, observed.links)
    steps.extend(link_steps)
    findings.extend(link_findings)
    pending, recheck = apply_grace(artifacts, findings, observed, context.grace_period, observed.at)
    certificates = [SourceCert(file, info) for file, info in plan.certificates]
    link_dirs = tuple(r for r in plan.links if not observed.links.get(r, LinkDir(r, problem="-")).problem)
    pem_dir = observed.pem.directory if observed.pem is not None and not observed.pem.problem else None
    trust = trust_set(plan.trusted, plan.subjects)
    return Decision(steps, artifacts, findings, links, certificates, trust, pending, recheck, link_dirs, pem_dir)
