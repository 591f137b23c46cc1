"""Health over a Unix socket: HTTP/1.1 `GET /health` (JSON) and `GET /metrics` (Prometheus text).

The daemon publishes an immutable document after every reconcile; request threads only read it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import resource
import secrets
import socket
import socketserver
import stat
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from sslreconciler.model.status import Status, parse_status

SOCKET_MODE = 0o660


def http_code(status: object) -> int:
    """200 up to pending, 503 beyond; a document without a valid status is a failure."""
    return (parse_status(status) or Status.FAILED).http_code


class HealthState:
    """The latest health document, swapped whole under a lock."""

    def __init__(self, initial: dict[str, Any]) -> None:
        self._lock = threading.Lock()
        self._doc = initial

    def publish(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._doc = doc

    def document(self) -> dict[str, Any]:
        with self._lock:
            return self._doc


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: object) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in labels.items()) + "}"


def _cn(rfc4514: str) -> str:
    for part in rfc4514.split(","):
        if part.startswith("CN="):
            return part[3:]
    return ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def render_metrics(doc: dict[str, Any], now: float | None = None) -> str:
    """Prometheus text format; certificate series named as x509-certificate-exporter names them."""
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Sequence[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    certs: list[tuple[str, float]] = []
    expired: list[tuple[str, float]] = []
    for file, cert in _all_certificates(doc):
        labels = _labels(
            filepath=file, subject_CN=_cn(cert["subject"]), issuer_CN=_cn(cert["issuer"]), serial_number=cert["serial"]
        )
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
    last = doc.get("last_reconcile") or {}
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


def _all_certificates(doc: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    out = [(name, a["certificate"]) for name, a in sorted(doc.get("artifacts", {}).items()) if a.get("certificate")]
    out += [(c["file"], c) for c in doc.get("certificates", [])]
    return out


# Limits: whoever is in the socket's group may connect; none of it may stop or starve the daemon.
MAX_CONNECTIONS = 32  # served at once; more are closed at once with a 503
MAX_REQUEST_HEAD_BYTES = 8192  # request line + headers; a request has no body
REQUEST_DEADLINE_S = 5.0  # a connection (one request) is cut after this, however slowly it trickles
FD_RESERVE = 128  # descriptors always left for reconciling: no new connection eats into them


class _HeadTooLarge(Exception):
    pass


class _BoundedReader(io.RawIOBase):
    """The request side of a connection, cut off after MAX_REQUEST_HEAD_BYTES."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._left = MAX_REQUEST_HEAD_BYTES

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            raise _HeadTooLarge
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        n = self._connection.recv_into(view)
        self._left -= n
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sslreconciler"
    timeout = REQUEST_DEADLINE_S
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # replaced by a reader that stops at the head limit
        self.rfile = io.BufferedReader(_BoundedReader(self.connection), 1024)

    def handle(self) -> None:
        """One request per connection, its head bounded in size (431) and in time (the reaper)."""
        self.close_connection = True
        try:
            self.handle_one_request()
        except _HeadTooLarge:
            with contextlib.suppress(OSError):
                self.send_error(431, "request header too large")
        except OSError:
            pass  # cut by the deadline, or the client went away

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        doc = self.server.state.document()
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/health/"):
            self._send(
                http_code(doc.get("status", "failed")), json.dumps(doc, indent=2).encode() + b"\n", "application/json"
            )
        elif path == "/metrics":
            self._send(200, render_metrics(doc).encode(), "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._send(404, b'{"error": "not found; try /health or /metrics"}\n', "application/json")

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # monitoring polls often; access lines would drown the journal


def _fds_left() -> int:
    """How many more descriptors this process may open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        return soft
    return soft - used


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 16

    def __init__(self, path: str, state: HealthState) -> None:
        self.state = state
        self._active: dict[int, tuple[socket.socket, float]] = {}  # id -> (connection, deadline)
        self._active_lock = threading.Lock()
        self.refused = 0
        super().__init__(path, _Handler, bind_and_activate=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._active_lock:
            full = len(self._active) >= MAX_CONNECTIONS
            if not full:
                self._active[id(request)] = (request, time.monotonic() + REQUEST_DEADLINE_S)
        if full or _fds_left() < FD_RESERVE:
            with self._active_lock:
                self._active.pop(id(request), None)
            self.refused += 1
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # e.g. no thread could be started: the connection is dropped, not the server
            with self._active_lock:
                self._active.pop(id(request), None)
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active.pop(id(request), None)

    def service_actions(self) -> None:
        """Every poll: cut connections past their deadline (their blocked reads return at once)."""
        now = time.monotonic()
        with self._active_lock:
            late = [conn for conn, deadline in self._active.values() if deadline < now]
        for conn in late:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def active_connections(self) -> int:
        with self._active_lock:
            return len(self._active)


class SocketInUse(Exception):
    pass


def clear_stale_socket(path: Path) -> None:
    """Remove a socket file a killed daemon left behind; refuse when a live daemon answers on it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketInUse(f"{path} exists and is not a socket; not touching it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError:
        pass  # e.g. a timeout: something is there; be safe and leave it
    finally:
        probe.close()
    raise SocketInUse(f"another daemon is answering on {path}")


class HealthServer:
    def __init__(self, path: Path, state: HealthState) -> None:
        self.path = path
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._state = state

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        clear_stale_socket(self.path)
        # Bind under a temp name, set the mode, then rename: never a moment with the wrong mode.
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        server = _Server(str(tmp), self._state)
        try:
            server.server_bind()
            os.chmod(tmp, SOCKET_MODE)
            server.server_activate()
            os.rename(tmp, self.path)
        except BaseException:
            server.server_close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="health", daemon=True, kwargs={"poll_interval": 0.5}
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
