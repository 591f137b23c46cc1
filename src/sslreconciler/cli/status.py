"""`sslreconciler status`: ask the daemon over its socket; answer like a monitoring plugin.

Exit codes: 0 OK, 1 WARNING (warning or pending), 2 CRITICAL (degraded or failed), 3 UNKNOWN.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import struct
import time

from sslreconciler.cli.status_summary import summary_line
from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.status import PLUGIN_LABELS as LABELS
from sslreconciler.model.status import PLUGIN_UNKNOWN, parse_status
from sslreconciler.model.text import finding_line, printable, sentence

# `status` imports neither typing nor pathlib (a few milliseconds of a monitoring check): both only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from os import PathLike
    from typing import Any

    from sslreconciler.model.health_document import HealthDocument

# The health document of 10,000 certificates is about 6 MB; parsed JSON costs up to some 25 bytes of
# memory per byte of text, so the cap also bounds what root's `status` can be made to allocate.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_TIMEVAL = struct.Struct("@ll")  # struct timeval, for SO_SNDTIMEO


class BadResponse(SslReconcilerError, ValueError):
    """Whatever answers on the socket does not speak the daemon's HTTP."""


def _connect(sock: socket.socket, path: str | PathLike[str], deadline: float) -> None:
    """Connect, waiting until ``deadline`` while the daemon's listen backlog is full (others are
    connecting too). A socket with a Python timeout is non-blocking and fails at once then (EAGAIN); a
    blocking one with SO_SNDTIMEO waits in the kernel, woken whenever the daemon accepts."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL.pack(int(left), int(left % 1 * 1e6) or 1))
        try:
            sock.connect(os.fspath(path))
            return
        except BlockingIOError:  # still full when SO_SNDTIMEO ran out: the loop checks the deadline
            continue
    raise TimeoutError("the daemon accepted no connection in time (its listen queue stayed full)")


def fetch(path: str | PathLike[str], resource: str = "/health", timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP/1.0 GET over the Unix socket: status code and body. A plain socket exchange, not
    http.client (whose import alone costs more than the whole request), read to EOF within ``timeout``
    and ``MAX_RESPONSE_BYTES``."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        _connect(sock, path, deadline)
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(f"GET {resource} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        chunks: list[bytes] = []
        total = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete answer within {timeout:g} s")
            sock.settimeout(left)
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_RESPONSE_BYTES:
                raise BadResponse(f"answer larger than {MAX_RESPONSE_BYTES} bytes")
            chunks.append(chunk)
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not sep or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        raise BadResponse("not an HTTP answer")
    return int(status_line[1]), body


def _days_left(not_after: str, now: dt.datetime) -> int:
    return (dt.datetime.fromisoformat(not_after.replace("Z", "+00:00")) - now).days


def render(doc: HealthDocument, code: int) -> str:
    now = dt.datetime.now(dt.UTC)
    artifacts: dict[str, Any] = doc.get("artifacts", {})
    findings: list[dict[str, str]] = doc.get("findings", [])
    errors = sum(f["level"] == "error" for f in findings)
    hooks: dict[str, dict[str, Any]] = doc.get("hooks", {})
    hook_failures = sum(h.get("outcome") not in ("ok", "never-run") for h in hooks.values())
    summary = (
        summary_line(doc, LABELS[code], errors, hook_failures)  # the worst cause in words, then the counts
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
            finding_line(
                f["level"], f.get("code", "-"), bool(f.get("pending")), f"{f['file']}: {sentence(f['reason'])}"
            )
            for f in findings
        ]
    if hooks:
        lines += ["", "hooks (run one at a time, in the order the desired state lists them):"]
        lines += [
            f"  {label}: {h['outcome']}"
            + (f" (exit {h['exit_code']})" if h.get("exit_code") is not None else "")
            + (f" at {h['started_at']}" if h.get("started_at") else " (no run known since the daemon started)")
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
    return "\n".join(printable(line) for line in lines)


def _unknown(socket_path: str | PathLike[str], reason: str, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"status": "unknown", "socket": os.fspath(socket_path), "reason": reason}))
    else:
        print(
            f"SSLRECONCILER UNKNOWN - no daemon answering on {printable(os.fspath(socket_path))}: {printable(reason)}"
        )
    return PLUGIN_UNKNOWN


def status_command(socket_path: str | PathLike[str], as_json: bool) -> int:
    """Whatever answers on the socket (whoever can bind that path may answer), the result is a plugin
    code and readable lines: a malformed document is UNKNOWN, never a traceback."""
    try:
        http_status, body = fetch(socket_path)
        if http_status == 503 and not body.strip():  # turned away before any document: the daemon is busy
            return _unknown(socket_path, "the daemon is serving as many connections as it allows (503)", as_json)
        doc: HealthDocument = json.loads(body)
    except (OSError, ValueError, RecursionError) as exc:  # BadResponse and bad JSON are ValueErrors
        return _unknown(socket_path, getattr(exc, "strerror", None) or str(exc) or type(exc).__name__, as_json)
    if not isinstance(doc, dict):
        return _unknown(socket_path, "not a health document (not a JSON object)", as_json)
    status = parse_status(doc.get("status"))
    code = PLUGIN_UNKNOWN if status is None else status.plugin_exit
    try:
        text = json.dumps(doc, indent=2) if as_json else render(doc, code)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError):
        return _unknown(socket_path, "not a health document (a field is missing or of the wrong type)", as_json)
    print(text)
    return code
