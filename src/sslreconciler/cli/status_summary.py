"""`status`'s first line: the plugin state, then the worst cause in words, then the counts. Pure.

The line is a contract (Nagios and Icinga checks parse ``SSLRECONCILER STATE - ``, the exit code says the
same): ``SSLRECONCILER WARNING - ssl-web.crt: ACME renewal overdue since 2026-12-01 (acme); warning: 5
artifacts, 0 errors, 0 warnings, 0 failed hooks``. The cause is the worst of, in this order on a tie: the
findings (``file: reason (code)``), the escalations of ``model.status.ESCALATIONS`` (a failed hook, an
overdue ACME renewal) and the artifacts' own statuses. With nothing to name (``OK``), the counts follow the
state word as before. Only model/ is imported: ``status`` stays a few milliseconds.
"""

from __future__ import annotations

from sslreconciler.model.status import ESCALATIONS, Escalation, Status, parse_status
from sslreconciler.model.text import plural

TYPE_CHECKING = False  # typing itself only for mypy: `status` does without its import
if TYPE_CHECKING:
    from typing import Any

    from sslreconciler.model.health_document import HealthDocument

ACME_CERT = "ssl-web.crt"  # the web pair's certificate, which the acme block renews (docs/acme.md)
MAX_CAUSE = 300  # characters of the cause on the line: a monitoring system shows one short line
HOOK_OK = ("ok", "never-run")  # outcomes that are not a failure (never-run: configured, not run yet)


def causes(doc: HealthDocument) -> list[tuple[Status, str]]:
    """Every cause of a status below ok, each with the status it gives, in the order of the tie rule."""
    out: list[tuple[Status, str]] = []
    for f in doc.get("findings", []):
        if f.get("level") == "error":
            rank = Status.PENDING if f.get("pending") else Status.DEGRADED
        else:
            rank = Status.WARNING
        out.append((rank, f"{f.get('file')}: {f.get('reason')} ({f.get('code', '-')})"))
    hooks: dict[str, dict[str, Any]] = doc.get("hooks", {})
    for label, h in hooks.items():
        if h.get("outcome") not in HOOK_OK:
            exited = f" with exit {h['exit_code']}" if h.get("exit_code") is not None else ""
            out.append(
                (
                    ESCALATIONS[Escalation.HOOK_FAILED],
                    f"hook {label}: {h.get('outcome')}{exited} at {h.get('started_at')} (hook-failed)",
                )
            )
    acme: dict[str, Any] = doc.get("acme") or {}
    if acme.get("overdue"):
        since = str(acme.get("renewal_due") or "?")[:10]
        last = f", last run {acme.get('last_result')}" if acme.get("last_result") else ""
        out.append(
            (ESCALATIONS[Escalation.ACME_OVERDUE], f"{ACME_CERT}: ACME renewal overdue since {since}{last} (acme)")
        )
    artifacts: dict[str, dict[str, Any]] = doc.get("artifacts", {})
    for name, a in sorted(artifacts.items()):
        status = parse_status(a.get("status"))
        if status is not None and status is not Status.OK:
            out.append((status, f"{name}: {a.get('message')} ({status})"))
    return out


def worst_cause(doc: HealthDocument) -> str:
    """The worst cause in words, "" when there is none (the first of the worst, by the tie rule)."""
    found = causes(doc)
    if not found:  # a daemon still starting says so in its message
        return " ".join(str(doc.get("message") or "").split()).replace("|", "/")[:MAX_CAUSE]
    top = max(rank.rank for rank, _ in found)
    cause = next(text for rank, text in found if rank.rank == top)
    cause = " ".join(cause.split()).replace("|", "/")  # one line; "|" starts a plugin's performance data
    return cause if len(cause) <= MAX_CAUSE else cause[: MAX_CAUSE - 3] + "..."


def summary_line(doc: HealthDocument, label: str, errors: int, failed: int) -> str:
    """The plugin's first line (see the module's doc): ``errors`` and ``failed`` hooks as ``render`` counts them."""
    findings = doc.get("findings", [])
    counts = (
        f"{doc.get('status')}: {plural(len(doc.get('artifacts', {})), 'artifact')}, {plural(errors, 'error')}, "
        f"{plural(len(findings) - errors, 'warning')}, {plural(failed, 'failed hook')}"
    )
    cause = worst_cause(doc) if parse_status(doc.get("status")) is not Status.OK else ""
    return f"SSLRECONCILER {label} - " + (f"{cause}; {counts}" if cause else counts)
