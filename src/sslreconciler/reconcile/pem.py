"""The PEM outputs (per pair, one set in ``pem_dir``) and the PEM CA bundle: what each must hold, from the
plan's pairs and accepted trust, compared with what is on disk. Pure: no I/O.

A pair that is not ``ok`` keeps its last good PEM files (their observed bytes go into the next version
unchanged); the set is rewritten, as one swap, only when some file's bytes, mode or owner differ.
"""

from __future__ import annotations

import base64
import hashlib
import stat

from cryptography import x509

from sslreconciler.config.desired import DesiredState
from sslreconciler.model.findings import Finding, FindingCode, Level, error
from sslreconciler.model.status import Status, worst
from sslreconciler.model.text import plural
from sslreconciler.reconcile.pairs import PairResult
from sslreconciler.reconcile.plan import Plan, blocked_reason
from sslreconciler.reconcile.report import Action, ArtifactReport, CertInfo
from sslreconciler.reconcile.state import OutputFile, Ownership, PemObserved
from sslreconciler.reconcile.steps import Step, SwapPemSet, WriteFile
from sslreconciler.stores.entries import cert_der, key_pkcs8

Decided = tuple[list[ArtifactReport], list[Step], list[Finding]]


def pem_block(label: str, der: bytes) -> str:
    """One PEM block: base64 in 64-character lines, as OpenSSL writes it."""
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {label}-----\n" + "".join(f"{line}\n" for line in lines) + f"-----END {label}-----\n"


def pair_pem(result: PairResult) -> dict[str, bytes]:
    """An ``ok`` pair's PEM files by role: key (PKCS#8), fullchain (leaf + intermediates), cert, chain."""
    assert result.key is not None and result.chain
    certs = [pem_block("CERTIFICATE", cert_der(c)).encode() for c in result.chain]
    return {
        "key": pem_block("PRIVATE KEY", key_pkcs8(result.key)).encode(),
        "fullchain": b"".join(certs),
        "cert": certs[0],
        "chain": b"".join(certs[1:]),
    }


def bundle_pem(trusted: dict[str, bytes]) -> bytes:
    """Every accepted CA once, ordered by SHA-256 fingerprint: the order depends on the set alone."""
    unique = {hashlib.sha256(der).hexdigest(): der for der in trusted.values()}
    return b"".join(pem_block("CERTIFICATE", unique[fp]).encode() for fp in sorted(unique))


def _why_differs(out: OutputFile, data: bytes, mode: int, owner: Ownership) -> str:
    """Empty when ``out`` holds ``data`` with the right mode and owner."""
    if out.kind == "absent":
        return "missing"
    if out.kind != "file" or out.stat is None:
        return out.why or "unreadable"
    if out.data != data:
        return "content differs"
    st = out.stat
    if stat.S_IMODE(st.st_mode) != mode:
        return f"mode {stat.S_IMODE(st.st_mode):04o} -> {mode:04o}"
    if (owner.uid is not None and st.st_uid != owner.uid) or (owner.gid is not None and st.st_gid != owner.gid):
        return "owner differs"
    return ""


def _held(role: str, chain: list[x509.Certificate]) -> CertInfo | None:
    """The first certificate a PEM member holds: none in a key file, the first intermediate in chain.pem."""
    held = [] if role == "key" else chain[1:] if role == "chain" else chain
    return CertInfo.of(held[0]) if held else None


def _leaf_of(data: bytes | None) -> CertInfo | None:
    try:
        return CertInfo.of(x509.load_pem_x509_certificate(data or b""))
    except ValueError:
        return None


def _status(sources: tuple[str, ...], findings: list[Finding]) -> Status:
    return worst(Status.DEGRADED if f.level is Level.ERROR else Status.WARNING for f in findings if f.file in sources)


def decide_pem(
    desired: DesiredState,
    plan: Plan,
    observed: PemObserved | None,
    owner: Ownership,
    findings: list[Finding],
    dry_run: bool,
) -> Decided:
    """Each PEM output's report, and the one swap that makes the set so (none when all are right)."""
    if observed is None or desired.pem_dir is None:
        return [], [], []
    public, private = int(desired.permissions.public_mode, 8), int(desired.permissions.private_mode, 8)
    reports: list[ArtifactReport] = []
    members: list[tuple[str, bytes, int]] = []
    written: list[str] = []
    existed: list[str] = []
    for pair in desired.pairs:
        if pair.pem is None:
            continue
        result = plan.pairs[pair.name]
        wanted = pair_pem(result) if result.ok else None
        status = _status(result.sources, findings)
        sources = result.sources
        for role, member in pair.pem.named():
            name = f"{desired.pem_dir}/{member}"
            mode = private if role == "key" else public
            out = observed.files.get(name) or OutputFile(name, name, "absent")
            if out.kind == "file":
                existed.append(name)
            data = wanted[role] if wanted is not None else out.data if out.kind == "file" else None
            if data is not None:
                members.append((member, data, mode))
            held = _held(role, result.chain) if result.ok else None  # what the file holds: never a key's leaf
            report = ArtifactReport(name, f"pem-{role}", "unchanged", status, "up to date", held, sources=sources)
            reports.append(report)
            if wanted is None:
                why = blocked_reason(sources, findings)
                if data is None:
                    report.action, report.status, report.message = "failed", Status.FAILED, f"cannot be built: {why}"
                else:
                    report.action, report.message = "kept-last-good", f"kept the last good file: {why}"
                    report.status = worst([status, Status.DEGRADED])
                report.certificate = _leaf_of(data) if role != "key" else None
                continue
            differs = _why_differs(out, wanted[role], mode, owner)
            if differs:
                written.append(name)
                report.action = "would-write" if dry_run else "written"
                report.message = f"{'would rewrite' if dry_run else 'rewritten'}: {differs}"
                report.previous = _leaf_of(out.data) if role != "key" and out.kind == "file" else None
    if observed.problem:
        problem = error(desired.pem_dir, observed.problem, FindingCode.NOT_A_FILE)
        for r in reports:
            r.action, r.status, r.message = "failed", Status.FAILED, f"{desired.pem_dir} {observed.problem}"
        return reports, [], [problem]
    if not written:
        return reports, [], []
    step = SwapPemSet(desired.pem_dir, tuple(members), owner.uid, owner.gid, tuple(written), tuple(existed))
    return reports, [step], []


def decide_bundle(
    desired: DesiredState, plan: Plan, out: OutputFile | None, owner: Ownership, findings: list[Finding], dry_run: bool
) -> Decided:
    """The PEM CA bundle: every certificate the truststore accepted, rewritten only when that set (or the
    file's mode or owner) differs."""
    name = desired.truststore.pem_bundle
    if name is None or out is None:
        return [], [], []
    sources = plan.trust_sources
    status = _status(sources, findings)
    mode = int(desired.permissions.public_mode, 8)

    def report(action: Action, status: Status, message: str) -> ArtifactReport:
        return ArtifactReport(name, "pem-bundle", action, status, message, sources=sources)

    if out.kind == "not-a-file" or (out.kind == "unreadable" and out.stat is None):
        problem = error(name, "is in the way: not a regular file, so it cannot be replaced", FindingCode.NOT_A_FILE)
        return [report("failed", Status.FAILED, "an output path holds a non-file")], [], [problem]
    data = bundle_pem(plan.trusted)
    count = len({hashlib.sha256(d).digest() for d in plan.trusted.values()})
    differs = _why_differs(out, data, mode, owner)
    if not differs:
        return [report("unchanged", status, f"up to date ({plural(count, 'CA')})")], [], []
    step = WriteFile(name, data, mode, owner.uid, owner.gid, existed=out.kind != "absent")
    action: Action = "would-write" if dry_run else "written"
    verb = "would rewrite" if dry_run else "rewritten"
    return [report(action, status, f"{verb}: {differs} ({plural(count, 'CA')})")], [step], []
