"""The health document: one typed shape for ``GET /health``, ``/metrics``, ``sslreconciler status`` and
sd_notify's STATUS line. Its keys are a contract (monitoring reads them): extend it, never rename.

Built by ``daemon.document``; read back from JSON by the ``status`` client, so every key but
``status`` may be missing from what an older or starting daemon sends.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypedDict

from sslreconciler.model.text import plural


class LastReconcile(TypedDict):
    started_at: str
    duration_ms: float
    trigger: str  # start, change: <file>, resync, reload (SIGHUP), grace window ended


class DesiredStateInfo(TypedDict):
    file: str
    problem: str | None  # why the last valid desired state is kept


class HealthDocument(TypedDict, total=False):
    status: str  # a model.status.Status value
    message: str  # only while starting
    ssl_dir: str
    artifacts: dict[str, dict[str, Any]]  # name -> ArtifactReport.to_dict()
    hash_links: list[dict[str, Any]]
    findings: list[dict[str, str]]  # Finding.to_dict(), plus "pending": "true"
    certificates: list[dict[str, str]]
    counts: dict[str, Any]
    trust: dict[str, Any]  # reconcile/trustset.trust_set: {"fingerprint", "authorities", "cas"}
    expiry_warning_days: int  # the desired state's window: a certificate expiring sooner is a warning
    acme: dict[str, Any]
    # label -> HookResult.to_dict(), the daemon's run or a one-shot's; outcome never-run while none is known
    hooks: dict[str, dict[str, Any]]
    version: str
    pid: int
    uptime_s: float
    last_reconcile: LastReconcile
    desired_state: DesiredStateInfo
    writer_lock: dict[str, Any]  # {"waiting": false}, or while waiting: since, waited_s, holder, trigger


def status_line(doc: HealthDocument, now: dt.datetime | None = None) -> str:
    """sd_notify's STATUS=: what `systemctl status` shows in one line."""
    now = now or dt.datetime.now(dt.UTC)
    findings = doc.get("findings", [])
    errors = sum(1 for f in findings if f["level"] == "error")
    counts = doc.get("counts", {})
    return (
        f"STATUS={doc.get('status')}: {plural(len(doc.get('artifacts', {})), 'artifact')}, {plural(errors, 'error')}, "
        f"{plural(len(findings) - errors, 'warning')}; {plural(counts.get('reconciles', 0), 'reconcile')}, "
        f"last {now.strftime('%H:%M:%SZ')}"
    )
