"""``GET /metrics``: the health document in Prometheus text format; certificate series named as
x509-certificate-exporter names them, so existing dashboards and alerts work unchanged."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from cryptography import x509

from sslreconciler.model.health_document import HealthDocument
from sslreconciler.model.status import Status
from sslreconciler.reconcile.report import common_name

HOOK_OUTCOMES = ("ok", "failed", "timeout", "error", "never-run")  # HookResult.outcome, and daemon/document.NEVER_RUN


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _cn(cert: dict[str, str], field: str) -> str:
    """The CN the document read from the certificate's attributes; for a document without it, the RFC 4514
    text parsed by cryptography (never split on commas: a CN may hold one, escaped)."""
    if f"{field}_cn" in cert:
        return cert[f"{field}_cn"]
    try:
        return common_name(x509.Name.from_rfc4514_string(cert[field]))
    except ValueError:
        return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def render_metrics(doc: HealthDocument, now: float | None = None) -> str:
    """Prometheus text format; certificate series named as x509-certificate-exporter names them."""
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    certs: list[tuple[str, float]] = []
    expired: list[tuple[str, float]] = []
    seen: set[str] = set()
    for file, cert in _all_certificates(doc):
        labels = _labels(
            filepath=file,
            subject_CN=_cn(cert, "subject"),
            issuer_CN=_cn(cert, "issuer"),
            serial_number=cert["serial"],
        )
        if labels in seen:  # the same certificate twice in one file: one series (node_exporter refuses two)
            continue
        seen.add(labels)
        not_after = _epoch(cert["not_after"])
        certs.append((labels, not_after))
        expired.append((labels, 1 if not_after < now else 0))
    family("x509_cert_not_after", "gauge", "Certificate not-after date, seconds since the epoch.", certs)
    family("x509_cert_expired", "gauge", "1 when the certificate has expired.", expired)
    status = doc.get("status", "failed")
    family(
        "sslreconciler_status",
        "gauge",
        "Node TLS status (one series per state; 1 = current).",
        [(_labels(status=s), 1 if s == status else 0) for s in Status],
    )
    window = doc.get("expiry_warning_days")
    if isinstance(window, int) and not isinstance(window, bool):
        family(
            "sslreconciler_expiry_warning_seconds",
            "gauge",
            "The desired state's expiry_warning_days, in seconds: a certificate expiring sooner is a warning (the "
            "alert rules' window).",
            [("", window * 86400)],
        )
    artifact_samples = []
    for name, artifact in sorted(doc.get("artifacts", {}).items()):
        artifact_samples += [(_labels(artifact=name, status=s), 1 if s == artifact["status"] else 0) for s in Status]
    family(
        "sslreconciler_artifact_status",
        "gauge",
        "Artifact status (one series per state; 1 = current).",
        artifact_samples,
    )
    counts = doc.get("counts", {})
    family(
        "sslreconciler_reconciles_total",
        "counter",
        "Reconciles run since start.",
        [("", int(counts.get("reconciles", 0)))],
    )
    family(
        "sslreconciler_reconcile_errors_total",
        "counter",
        "Reconciles that ended degraded or failed.",
        [("", int(counts.get("reconcile_errors", 0)))],
    )
    family(
        "sslreconciler_artifact_writes_total",
        "counter",
        "Artifacts rewritten since start.",
        [(_labels(artifact=a), int(n)) for a, n in sorted(counts.get("writes_by_artifact", {}).items())],
    )
    last: dict[str, Any] = dict(doc.get("last_reconcile") or {})
    family(
        "sslreconciler_reconcile_duration_seconds",
        "gauge",
        "Duration of the last reconcile.",
        [("", float(last.get("duration_ms", 0.0)) / 1000)],
    )
    family(
        "sslreconciler_last_reconcile_timestamp_seconds",
        "gauge",
        "When the last reconcile started.",
        [("", _epoch(last["started_at"]) if last.get("started_at") else 0.0)],
    )
    findings = doc.get("findings", [])
    family(
        "sslreconciler_findings",
        "gauge",
        "Findings of the last reconcile by level.",
        [(_labels(level=lvl), sum(1 for f in findings if f["level"] == lvl)) for lvl in ("error", "warning")],
    )
    hook_runs: dict[str, dict[str, int]] = counts.get("hook_runs", {})
    family(
        "sslreconciler_hook_runs_total",
        "counter",
        "Post-change hook runs by outcome.",
        [(_labels(hook=h, outcome=o), n) for h, by in sorted(hook_runs.items()) for o, n in sorted(by.items())],
    )
    last_hooks: dict[str, dict[str, Any]] = doc.get("hooks", {})
    family(
        "sslreconciler_hook_last_outcome",
        "gauge",
        "Each configured hook's last known outcome, run by the daemon or a one-shot command (one series per "
        "outcome; 1 = the last run's; never-run until a run is known).",
        [
            (_labels(hook=h, outcome=o), 1 if o == result.get("outcome") else 0)
            for h, result in sorted(last_hooks.items())
            for o in HOOK_OUTCOMES
        ],
    )
    acme = doc.get("acme") or {}
    for name, key, help_text in (
        ("last_success", "last_success", "When `acme renew` last ended well (issued or nothing to do)."),
        ("renewal_due", "renewal_due", "The web certificate's renewal point, as `acme renew` last saw it."),
    ):
        when = acme.get(key)
        family(
            f"sslreconciler_acme_{name}_timestamp_seconds",
            "gauge",
            help_text,
            [("", _epoch(when))] if when else [],
        )
    family(
        "sslreconciler_acme_failures",
        "gauge",
        "Consecutive failed `acme renew` attempts.",
        [("", int(acme.get("failures", 0)))] if acme else [],
    )
    trust = doc.get("trust")
    family(
        "sslreconciler_trust_set_info",
        "gauge",
        "The trusted CA set (SHA-256 over the sorted DER of the authorities); nodes that disagree have drifted.",
        [(_labels(fingerprint=trust["fingerprint"]), 1)] if trust else [],
    )
    return "\n".join(out) + "\n"


def _all_certificates(doc: HealthDocument) -> list[tuple[str, dict[str, str]]]:
    out = [(name, a["certificate"]) for name, a in sorted(doc.get("artifacts", {}).items()) if a.get("certificate")]
    out += [(c["file"], c) for c in doc.get("certificates", [])]
    return out
