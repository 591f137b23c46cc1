"""Health over a Unix socket: HTTP/1.1 `GET /health` (JSON) and `GET /metrics` (Prometheus text).

The daemon publishes an immutable document after every reconcile; request threads only read it.
"""

from __future__ import annotations

import contextlib
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
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from sslreconciler.daemon.metrics import render_metrics
from sslreconciler.daemon.slots import MAX_CONNECTIONS, ConnectionSlots, peer_uid
from sslreconciler.model.errors import SslReconcilerError
from sslreconciler.model.health_document import HealthDocument
from sslreconciler.model.status import Status, parse_status

SOCKET_MODE = 0o660


def http_code(status: object) -> int:
    """200 up to pending, 503 beyond; a document without a valid status is a failure."""
    return (parse_status(status) or Status.FAILED).http_code


class HealthState:
    """The latest health document, swapped whole under a lock."""

    def __init__(self, initial: HealthDocument) -> None:
        self._lock = threading.Lock()
        self._doc = initial

    def publish(self, doc: HealthDocument) -> None:
        with self._lock:
            self._doc = doc

    def document(self) -> HealthDocument:
        with self._lock:
            return self._doc


# Limits: whoever is in the socket's group may connect; none of it may stop or starve the daemon, nor
# (slots.py: a share per peer uid) starve another uid's `status`.
MAX_REQUEST_HEAD_BYTES = 8192  # request line + headers; a request has no body
REQUEST_DEADLINE_S = 5.0  # a connection (one request) is cut after this, however slowly it trickles
FD_RESERVE = 128  # descriptors always left for reconciling: no new connection eats into them


class _HeadTooLarge(SslReconcilerError):
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
    # Room for every connection one client can be served plus some waiting; a client finding it full
    # waits (`status` does, in the kernel) rather than failing: slots.py, not the backlog, is the fairness.
    request_queue_size = 2 * MAX_CONNECTIONS

    def __init__(self, path: str, state: HealthState) -> None:
        self.state = state
        self.slots = ConnectionSlots(privileged={0, os.geteuid()})
        self._active: dict[int, tuple[socket.socket, float, int]] = {}  # id -> (connection, deadline, uid)
        self._active_lock = threading.Lock()
        self.refused = 0
        super().__init__(path, _Handler, bind_and_activate=False)

    def _refuse(self, request: socket.socket) -> None:
        """Answer 503 and close, on this (the accepting) thread: nothing read, nothing waited for."""
        self.refused += 1
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        self.shutdown_request(request)

    def _release(self, request: socket.socket) -> None:
        with self._active_lock:
            entry = self._active.pop(id(request), None)
        if entry is not None:
            self.slots.give_back(entry[2])

    def process_request(self, request: Any, client_address: Any) -> None:
        uid = peer_uid(request)
        if not self.slots.take(uid):  # this uid holds its share, or only reserved slots are left
            self._refuse(request)
            return
        if _fds_left() < FD_RESERVE:
            self.slots.give_back(uid)
            self._refuse(request)
            return
        with self._active_lock:
            self._active[id(request)] = (request, time.monotonic() + REQUEST_DEADLINE_S, uid)
        try:
            super().process_request(request, client_address)
        except BaseException:  # e.g. no thread could be started: the connection is dropped, not the server
            self._release(request)
            self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def service_actions(self) -> None:
        """Every poll: cut connections past their deadline (their blocked reads return at once)."""
        now = time.monotonic()
        with self._active_lock:
            late = [conn for conn, deadline, _uid in self._active.values() if deadline < now]
        for conn in late:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def active_connections(self) -> int:
        with self._active_lock:
            return len(self._active)


class SocketInUse(SslReconcilerError):
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
