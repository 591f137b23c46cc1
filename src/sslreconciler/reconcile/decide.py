"""Decide: what the node observed + the desired state + now -> actions, findings, the report, when to look again.

Pure: no file, socket or process is touched here (the import contract in pyproject.toml holds it to
that). ``contents`` says what each store must hold; this module compares that with what each output
holds now and says what to do about it: write, fix mode/owner, keep the last good store (and why),
fail, make or remove a hash link. ``settle`` then turns what execution reported back into the final
report, and ``hooks_due`` names the hooks the writes call for. A dry run is "decide, then don't execute".
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field, replace

from cryptography import x509

from sslreconciler.config.desired import DesiredState, Hook
from sslreconciler.model.findings import Finding, FindingCode, Level, error
from sslreconciler.model.status import Status, worst
from sslreconciler.reconcile.contents import ArtifactPlan, make_plan
from sslreconciler.reconcile.memo import ReconcileCache, access_digest, derived, store_spec
from sslreconciler.reconcile.report import Action, ArtifactReport, CertInfo, LinkReport, Report, SourceCert
from sslreconciler.reconcile.state import LinkDir, Observed, OutputFile, Ownership
from sslreconciler.reconcile.trustset import trust_set
from sslreconciler.stores.entries import StoreContent, StoreUnreadable
from sslreconciler.stores.jks import read_jks
from sslreconciler.stores.pkcs12 import read_pkcs12

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


# --- the actions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteStore:
    """Encode ``content`` and put it in place atomically, created with ``mode`` and the owner."""

    name: str
    path: str  # what the memo knows it by
    kind: str  # jks / pkcs12 / truststore
    content: StoreContent = field(repr=False)
    password: str = field(repr=False)
    profile: str
    mode: int
    uid: int | None  # None: the ssl dir's
    gid: int | None
    existed: bool  # a write that fails then keeps what is there
    previous: CertInfo | None  # the certificate the rewrite replaces


@dataclass(frozen=True, slots=True)
class FixAttributes:
    """Correct mode and/or owner of the very inode observed (same bytes)."""

    name: str
    observed: os.stat_result
    mode: int | None
    uid: int | None
    gid: int | None


@dataclass(frozen=True, slots=True)
class MakeLink:
    directory: str
    name: str
    target: str


@dataclass(frozen=True, slots=True)
class RemoveLink:
    directory: str
    name: str


Step = WriteStore | FixAttributes | MakeLink | RemoveLink


@dataclass(frozen=True, slots=True)
class Context:
    hostname: str
    now: dt.datetime
    dry_run: bool = False
    grace_period: float = 0.0  # seconds a young transient error is reported pending (the daemon's)


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


# --- reading what an output holds (pure over its bytes) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Existing:
    content: StoreContent | None
    profile: str | None = None
    why_unreadable: str = ""


def _spec(plan: ArtifactPlan) -> bytes:
    assert plan.content is not None and plan.password is not None
    return store_spec(plan.kind, plan.profile, plan.password, plan.content)


def _existing(plan: ArtifactPlan, out: OutputFile, memo: ReconcileCache | None, spec: bytes | None) -> Existing:
    """What a regular output holds, decoded with the store password; the memo spares known bytes.
    ``spec``: ``_spec(plan)`` when there is a state-dir record to check it against, else None."""
    if out.kind != "file":
        return Existing(None, why_unreadable=out.why)
    if plan.password is None or out.data is None:  # no password to open it with: only say it is there
        return Existing(None)
    access = access_digest(plan.kind, plan.profile, plan.password)
    known = memo.stores.get(out.path) if memo is not None else None
    if known is not None and known[:2] == (out.digest, access):  # bytes this process wrote or opened
        return Existing(known[2], known[3])
    recorded = None
    if memo is not None and spec is not None:
        recorded = memo.recorded.get(out.path)
        if recorded == (out.digest.hex(), memo.spec_mac(spec)):
            return Existing(plan.content, plan.profile)  # an earlier run verified these bytes hold exactly this
    try:
        if plan.kind == "pkcs12":
            content, profile = read_pkcs12(out.data, plan.password)
        else:
            content, profile = read_jks(out.data, plan.password), None
    except StoreUnreadable as exc:
        if recorded is not None and recorded[0] == out.digest.hex():  # the bytes an earlier run wrote
            return Existing(None, why_unreadable="the store password changed since it was written")
        return Existing(None, why_unreadable=f"cannot be opened with the store password or is corrupt ({exc})")
    if memo is not None:
        memo.stores[out.path] = (out.digest, access, content, profile)
    return Existing(content, profile)


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


def _cert_info(cert: x509.Certificate, memo: ReconcileCache | None) -> CertInfo:
    return derived(memo, cert, "info", lambda: CertInfo.of(cert))


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


def describe_fix(fix: FixAttributes) -> str:
    said = []
    if fix.uid is not None or fix.gid is not None:
        said.append("owner")
    if fix.mode is not None:
        said.append(f"mode {stat.S_IMODE(fix.observed.st_mode):04o} -> {fix.mode:04o}")
    return ", ".join(said)


# --- one artifact ----------------------------------------------------------------------------------------


def decide_artifact(
    plan: ArtifactPlan,
    out: OutputFile,
    owner: Ownership,
    findings: list[Finding],
    dry_run: bool,
    memo: ReconcileCache | None = None,
) -> tuple[ArtifactReport, list[Step]]:
    """The report an artifact gets and the steps that make it so (none when it is right or blocked)."""
    related = [f for f in findings if f.file in plan.sources]
    status = worst(Status.DEGRADED if f.level is Level.ERROR else Status.WARNING for f in related)
    note = f" ({plan.note})" if plan.note else ""
    # the digest of everything the store must hold: only a state-dir record needs it (the daemon has none)
    spec = _spec(plan) if memo is not None and memo.record_key and plan.content is not None else None
    existing = _existing(plan, out, memo, spec)

    def report(action: Action, status: Status, message: str, cert: CertInfo | None = None) -> ArtifactReport:
        return ArtifactReport(plan.name, plan.kind, action, status, message, cert, sources=plan.sources)

    in_the_way = out.kind == "not-a-file" or (out.kind == "unreadable" and out.stat is None)
    if plan.content is None:
        if out.kind != "absent" and not in_the_way and out.kind != "symlink":
            kept = f"kept the last good store: {plan.blocked_by}"
            return report("kept-last-good", worst([status, Status.DEGRADED]), kept, _leaf(existing.content)), []
        return report("failed", Status.FAILED, f"cannot be built: {plan.blocked_by}"), []
    if in_the_way:
        findings.append(
            error(plan.name, "is in the way: not a regular file, so it cannot be replaced", FindingCode.NOT_A_FILE)
        )
        return report("failed", Status.FAILED, "an output path holds a non-file"), []
    why = _why_rewrite(plan, out, existing)
    certificate = _leaf(plan.content)
    if not why:
        assert out.stat is not None
        fix = _attributes_to_fix(out.stat, plan.mode, owner)
        if memo is not None and spec is not None:
            memo.remember_verified(out.path, out.digest, spec)
        if fix is None:
            return report("unchanged", status, "up to date" + note, certificate), []
        fix = replace(fix, name=plan.name)
        message = "up to date; would fix mode/owner" if dry_run else f"fixed {describe_fix(fix)}"
        return report("unchanged", status, message + note, certificate), [fix]
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
        return report("would-write", status, f"would rewrite: {why}{note}", certificate), [write]
    written = report("written", status, f"rewritten: {why}{note}", certificate)
    written.previous = write.previous
    return written, [write]


# --- hash links --------------------------------------------------------------------------------------------


def decide_links(
    wanted: dict[str, dict[str, str]], have: dict[str, LinkDir]
) -> tuple[list[LinkReport], list[Step], list[Finding]]:
    """Each trust directory's <hash>.N links as ``wanted`` says: c_rehash numbering, nothing else touched."""
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
            if there.links.get(name) == target:
                report.unchanged += 1
            elif name in there.occupied:
                findings.append(
                    error(f"{rel}/{name}", "is a file where a hash link belongs; left alone", FindingCode.NOT_A_LINK)
                )
            else:
                report.added.append(name)
                steps.append(MakeLink(rel, name, target))
        for name in sorted(set(there.links) - set(links)):
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
    plan = make_plan(desired, observed.inputs, context.hostname, context.now, findings, memo)
    findings = plan.findings
    artifacts: list[ArtifactReport] = []
    steps: list[Step] = []
    for artifact in plan.artifacts:
        report, artifact_steps = decide_artifact(
            artifact, observed.outputs[artifact.name], observed.owner, findings, context.dry_run, memo
        )
        artifacts.append(report)
        steps.extend(artifact_steps)
    links, link_steps, link_findings = decide_links(plan.links, observed.links)
    steps.extend(link_steps)
    findings.extend(link_findings)
    pending, recheck = apply_grace(artifacts, findings, observed, context.grace_period, observed.at)
    certificates = [SourceCert(file, _cert_info(cert, memo)) for file, cert in plan.certificates]
    link_dirs = tuple(r for r in plan.links if not observed.links.get(r, LinkDir(r, problem="-")).problem)
    return Decision(
        steps, artifacts, findings, links, certificates, trust_set(plan.trusted), pending, recheck, link_dirs
    )


# --- after execution -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepFailed:
    step: Step
    reason: str  # strerror


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


def hooks_due(hooks: list[Hook], written: set[str]) -> list[tuple[Hook, tuple[str, ...]]]:
    """Each hook that follows one of the written artifacts, with the ones it follows."""
    return [(h, tuple(a for a in h.after if a in written)) for h in hooks if written.intersection(h.after)]
