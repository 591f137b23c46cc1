"""`sslreconciler status`: ask the daemon over its socket; answer like a monitoring plugin.

Exit codes: 0 OK, 1 WARNING (warning or pending), 2 CRITICAL (degraded or failed), 3 UNKNOWN.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
from pathlib import Path
from typing import Any

from sslreconciler.model.health_document import HealthDocument
from sslreconciler.model.status import PLUGIN_LABELS as LABELS
from sslreconciler.model.status import PLUGIN_UNKNOWN, parse_status


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def fetch(path: Path, resource: str = "/health", timeout: float = 5.0) -> tuple[int, bytes]:
    conn = _UnixHTTPConnection(path, timeout)
    try:
        conn.request("GET", resource)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _days_left(not_after: str, now: dt.datetime) -> int:
    return (dt.datetime.fromisoformat(not_after.replace("Z", "+00:00")) - now).days


def render(doc: HealthDocument, code: int) -> str:
    now = dt.datetime.now(dt.UTC)
    artifacts: dict[str, Any] = doc.get("artifacts", {})
    findings: list[dict[str, str]] = doc.get("findings", [])
    errors = sum(f["level"] == "error" for f in findings)
    hooks: dict[str, dict[str, Any]] = doc.get("hooks", {})
    hook_failures = sum(h.get("outcome") != "ok" for h in hooks.values())
    summary = (
        f"SSLRECONCILER {LABELS[code]} - {doc.get('status')}: {len(artifacts)} artifacts, "
        f"{errors} errors, {len(findings) - errors} warnings, {hook_failures} failed hooks"
    )
    lines = [summary, ""]
    # SERIAL (its last 8 hex digits) and SHA256 (the fingerprint's first 12) tell a renewed certificate
    # from the one before even when subject and expiry are the same.
    rows = [("ARTIFACT", "STATUS", "EXPIRES", "DAYS", "SERIAL", "SHA256", "CERTIFICATE")]
    for name, a in sorted(artifacts.items()):
        cert = a.get("certificate")
        if cert:
            rows.append(
                (
                    name,
                    a["status"],
                    cert["not_after"][:10],
                    str(_days_left(cert["not_after"], now)),
                    str(cert.get("serial", "-"))[-8:],
                    str(cert.get("fingerprint_sha256", "-"))[:12],
                    cert["subject"],
                )
            )
        else:
            rows.append((name, a["status"], "-", "-", "-", "-", "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:6], widths, strict=True)) + "  " + r[6] for r in rows]
    for name, a in sorted(artifacts.items()):
        if a["status"] not in ("ok",):
            lines.append(f"  {name}: {a['message']}")
    if findings:
        lines += ["", "findings:"]
        lines += [
            f"  {f['level']}{' (pending)' if f.get('pending') else ''}: {f['file']}: {f['reason']}" for f in findings
        ]
    if hooks:
        lines += ["", "hooks (run one at a time, in the order the desired state lists them):"]
        lines += [
            f"  {label}: {h['outcome']}"
            + (f" (exit {h['exit_code']})" if h.get("exit_code") is not None else "")
            + f" at {h['started_at']}"
            + (f": {h['detail']}" if h["detail"] else "")
            for label, h in hooks.items()
        ]
    acme: dict[str, Any] = doc.get("acme") or {}
    if acme:
        error = acme.get("last_error") or {}
        lines += [
            "",
            f"acme: renewal point {acme.get('renewal_due') or '-'}"
            + (" OVERDUE" if acme.get("overdue") else "")
            + f"; last run {acme.get('last_attempt')}: {acme.get('last_result')}"
            + (f" ({error.get('type')}: {error.get('detail')})" if error else ""),
        ]
    trust: dict[str, Any] = doc.get("trust") or {}
    if trust:
        lines += ["", f"trusts: {', '.join(trust['authorities']) or 'nothing'} (set {trust['fingerprint'][:16]})"]
    last: dict[str, Any] = dict(doc.get("last_reconcile") or {})
    counts = doc.get("counts", {})
    if last:
        lines += [
            "",
            f"last reconcile {last.get('started_at')} ({last.get('duration_ms')} ms, {last.get('trigger')}); "
            f"{counts.get('reconciles', 0)} reconciles, {counts.get('writes', 0)} writes since start",
        ]
    return "\n".join(lines)


def status_command(socket_path: Path, as_json: bool) -> int:
    try:
        _code, body = fetch(socket_path)
        doc: HealthDocument = json.loads(body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        if as_json:
            print(json.dumps({"status": "unknown", "socket": str(socket_path), "reason": reason}))
        else:
            print(f"SSLRECONCILER UNKNOWN - no daemon answering on {socket_path}: {reason}")
        return PLUGIN_UNKNOWN
    status = parse_status(doc.get("status"))
    code = PLUGIN_UNKNOWN if status is None else status.plugin_exit
    print(json.dumps(doc, indent=2) if as_json else render(doc, code))
    return code
