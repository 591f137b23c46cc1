"""The outcome of a reconcile: per artifact what happened and why, then the findings.

One model feeds the CLI's text and JSON, the state file and (later) the health socket.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sslreconciler.model.findings import Finding, Level
from sslreconciler.model.status import ESCALATIONS, Escalation, Status, worst
from sslreconciler.model.text import finding_line, plural, printable

Action = Literal["unchanged", "written", "would-write", "kept-last-good", "failed"]


@dataclass(frozen=True, slots=True)
class HookResult:
    hook: str
    outcome: Literal["ok", "failed", "timeout", "error"]
    started_at: str
    duration_s: float
    exit_code: int | None
    detail: str  # tail of its output, or why it could not start
    changed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["changed"] = list(self.changed)
        return out


def common_name(name: x509.Name) -> str:
    """The name's most specific commonName (the last one, as OpenSSL shows it), or "" without one."""
    cns = name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = cns[-1].value if cns else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str
    issuer: str
    serial: str
    not_after: str
    fingerprint_sha256: str
    subject_cn: str = ""  # read from the name's attributes (the last CN), never parsed back out of the text
    issuer_cn: str = ""

    @staticmethod
    def of(cert: x509.Certificate) -> CertInfo:
        return CertInfo(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=f"{cert.serial_number:x}",
            not_after=cert.not_valid_after_utc.isoformat().replace("+00:00", "Z"),
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            subject_cn=common_name(cert.subject),
            issuer_cn=common_name(cert.issuer),
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_after": self.not_after,
            "fingerprint_sha256": self.fingerprint_sha256,
            "subject_cn": self.subject_cn,
            "issuer_cn": self.issuer_cn,
        }

    def brief(self) -> str:
        return f"{self.subject} serial {self.serial} until {self.not_after[:10]}"


@dataclass(slots=True)
class ArtifactReport:
    name: str
    kind: str
    action: Action
    status: Status
    message: str
    certificate: CertInfo | None = None
    previous: CertInfo | None = None  # the certificate a rewrite replaced
    sources: tuple[str, ...] = ()  # the files it is built from

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "action": self.action,
            "status": self.status,
            "message": self.message,
        }
        if self.certificate is not None:
            out["certificate"] = self.certificate.to_dict()
        if self.previous is not None:
            out["previous"] = self.previous.to_dict()
        out["sources"] = list(self.sources)
        return out


@dataclass(frozen=True, slots=True)
class SourceCert:
    """A certificate found in a source file, for expiry monitoring."""

    file: str
    info: CertInfo

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, **self.info.to_dict()}


@dataclass(slots=True)
class LinkReport:
    directory: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    def to_dict(self) -> dict[str, Any]:
        """What ``asdict`` gives, without its deep copy of every name (10,000 of them in a cold build)."""
        return {
            "directory": self.directory,
            "added": list(self.added),
            "removed": list(self.removed),
            "unchanged": self.unchanged,
        }


@dataclass(slots=True)
class Report:
    ssl_dir: str
    started_at: dt.datetime
    duration_s: float
    artifacts: list[ArtifactReport]
    findings: list[Finding]
    links: list[LinkReport]
    dry_run: bool = False
    certificates: list[SourceCert] = field(default_factory=list)
    pending_files: set[str] = field(default_factory=set)  # errors here are a copy in progress (daemon)
    internal_error: bool = False  # the reconcile itself broke off: failed, whatever else is known
    trust: dict[str, Any] | None = None  # trustset.trust_set of the authorities; None when nothing was read
    hook_results: list[HookResult] = field(default_factory=list)  # hooks a one-shot ran after its writes
    expiry_warning_days: int | None = None  # the desired state's window for `expiring` (None: not reconciled)

    @property
    def status(self) -> Status:
        statuses: list[Status] = [a.status for a in self.artifacts]
        if self.internal_error:
            statuses.append(Status.FAILED)
        for f in self.findings:
            if f.level is Level.ERROR:
                statuses.append(Status.PENDING if f.file in self.pending_files else Status.DEGRADED)
            else:
                statuses.append(Status.WARNING)
        if any(h.outcome != "ok" for h in self.hook_results):  # as in the daemon: the stores are right
            statuses.append(ESCALATIONS[Escalation.HOOK_FAILED])
        return worst(statuses)

    def finding_dicts(self) -> list[dict[str, str]]:
        out = []
        for f in self.findings:
            d = f.to_dict()
            if f.level is Level.ERROR and f.file in self.pending_files:
                d["pending"] = "true"
            out.append(d)
        return out

    @property
    def exit_code(self) -> int:
        """0 fine or warnings only; 1 degraded or failed, or a hook this command ran did not end ok."""
        hook_failed = any(h.outcome != "ok" for h in self.hook_results)
        return max(self.status.cli_exit, 1 if hook_failed else 0)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.artifacts:
            out[a.action] = out.get(a.action, 0) + 1
        out["errors"] = sum(f.level is Level.ERROR for f in self.findings)
        out["warnings"] = sum(f.level is Level.WARNING for f in self.findings)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "ssl_dir": self.ssl_dir,
            "dry_run": self.dry_run,
            "started_at": self.started_at.isoformat().replace("+00:00", "Z"),
            "duration_ms": round(self.duration_s * 1000, 3),
            "artifacts": {a.name: a.to_dict() for a in self.artifacts},
            "hash_links": [link.to_dict() for link in self.links],
            "findings": self.finding_dicts(),
            "certificates": [c.to_dict() for c in self.certificates],
            "counts": self.counts(),
            **({"trust": self.trust} if self.trust is not None else {}),
            **({"expiry_warning_days": self.expiry_warning_days} if self.expiry_warning_days is not None else {}),
            **({"hooks": {h.hook: h.to_dict() for h in self.hook_results}} if self.hook_results else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def render_text(self) -> str:
        lines = [f"{self.ssl_dir}: {self.status}" + (" (check: nothing written)" if self.dry_run else "")]
        width = max((len(a.name) for a in self.artifacts), default=10)
        for a in self.artifacts:
            lines.append(f"  {a.name:<{width}}  {a.action:<14} {a.status:<8} {a.message}")
        for link in self.links:
            if link.added or link.removed:
                verb = "would change" if self.dry_run else "changed"
                lines.append(
                    f"  {link.directory}/ hash links {verb}: +{len(link.added)} -{len(link.removed)}"
                    f" ({link.unchanged} unchanged)"
                )
        if self.findings:
            counted = f"{plural(self.counts()['errors'], 'error')}, {plural(self.counts()['warnings'], 'warning')}"
            lines.append(f"findings ({counted}):")
            lines.extend(
                finding_line(
                    f.level.value, f.code.value, f.level is Level.ERROR and f.file in self.pending_files, f.message
                )
                for f in self.findings
            )
        if self.hook_results:
            lines.append("hooks:")
            for h in self.hook_results:
                exited = f" (exit {h.exit_code})" if h.exit_code is not None else ""
                lines.append(
                    f"  {h.hook}: {h.outcome}{exited}" + (f": {h.detail}" if h.outcome != "ok" and h.detail else "")
                )
        return "\n".join(printable(line) for line in lines)  # file names are anyone's who can write there
