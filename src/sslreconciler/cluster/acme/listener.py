"""The standalone HTTP-01 listener (``challenge: {"listen": ...}``): answers the CA whoever else connects.

One thread, one ``selectors`` loop, every socket non-blocking, so no client can hold the others up:
each connection has CONNECTION_DEADLINE_S from accept to close however slowly its bytes trickle, a
request head is at most REQUEST_LIMIT bytes, and at most MAX_CONNECTIONS are open — when a new one
comes in over that, the oldest is closed (a CA sends its request at once, so it is never the oldest
for long). Out of descriptors (EMFILE/ENFILE, e.g. a flood under a low ``ulimit -n``), the oldest is closed
to make room and the accept tried again; with nothing to close, the listening socket is left unwatched until
a connection closes or PAUSE_S passes, so the loop never spins on a socket it cannot accept from. ``stop``
closes everything and waits for the thread at most STOP_WAIT_S: it never waits for a client. Only
``GET /.well-known/acme-challenge/<token>`` of a token of this order is answered.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

CONNECTION_DEADLINE_S = 10.0
REQUEST_LIMIT = 8 * 1024
MAX_CONNECTIONS = 256
STOP_WAIT_S = 5.0
PAUSE_S = 0.2  # out of descriptors with none of ours to close: how long the listening socket is not watched
OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
PREFIX = b"/.well-known/acme-challenge/"


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytes = b""


def _response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


class Http01Listener:
    def __init__(self, host: str, port: int, answers: dict[str, bytes]) -> None:
        """``answers``: token -> key authorization. OSError when the address cannot be bound."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):  # "[::]:80" serves IPv4 too, where the system allows
                    self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            self.sock.bind((host, port))
            self.sock.listen(128)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.answers = {token.encode(): value for token, value in answers.items()}
        self.conns: dict[int, _Conn] = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.paused_until: float | None = None  # the listening socket is unwatched until then (or a close)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="http-01", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(STOP_WAIT_S)  # the loop wakes every 0.2 s; a client cannot delay it
        if not self.thread.is_alive():
            for fd in list(self.conns):
                self._close(fd)
            self.selector.close()
        self.sock.close()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            for key, events in self.selector.select(timeout=0.2):
                if key.fileobj is self.sock:
                    self._accept()
                elif key.fd not in self.conns:  # closed earlier in this round (evicted)
                    continue
                elif events & selectors.EVENT_READ:
                    self._read(key.fd)
                else:
                    self._write(key.fd)
            now = time.monotonic()
            for fd in [fd for fd, c in self.conns.items() if c.deadline <= now]:
                self._close(fd)
            if self.paused_until is not None and now >= self.paused_until:
                self._resume()

    def _accept(self) -> None:
        for _ in range(64):  # a burst of connections must not starve the ones already open
            try:
                sock, _addr = self.sock.accept()
            except BlockingIOError:  # none left
                return
            except OSError as exc:
                if exc.errno in OUT_OF_FDS and self.conns:  # make room: the oldest goes, as over the cap
                    self._close_oldest()
                    continue
                if exc.errno == errno.ECONNABORTED:  # that client gave up meanwhile
                    continue
                self._pause()  # nothing of ours to free (or another error): never spin on a readable socket
                return
            sock.setblocking(False)
            if len(self.conns) >= MAX_CONNECTIONS:
                self._close_oldest()
            self.conns[sock.fileno()] = _Conn(sock, time.monotonic() + CONNECTION_DEADLINE_S)
            self.selector.register(sock, selectors.EVENT_READ)

    def _close_oldest(self) -> None:
        self._close(min(self.conns, key=lambda fd: self.conns[fd].deadline))

    def _pause(self) -> None:
        if self.paused_until is None:
            self.selector.unregister(self.sock)
        self.paused_until = time.monotonic() + PAUSE_S

    def _resume(self) -> None:
        if self.paused_until is not None:
            self.paused_until = None
            self.selector.register(self.sock, selectors.EVENT_READ)

    def _read(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            data = conn.sock.recv(REQUEST_LIMIT + 1 - len(conn.inbox))
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        conn.inbox += data
        end = conn.inbox.find(b"\r\n\r\n")
        if end < 0:
            end = conn.inbox.find(b"\n\n")
        if end < 0 and len(conn.inbox) <= REQUEST_LIMIT:
            return
        conn.outbox = self._answer(bytes(conn.inbox[:end]) if end >= 0 else b"")
        self.selector.modify(conn.sock, selectors.EVENT_WRITE)
        self._write(fd)

    def _answer(self, head: bytes) -> bytes:
        if not head:
            return _response("431 Request Header Fields Too Large", b"")
        method, _, rest = head.split(b"\r\n", 1)[0].partition(b" ")
        target = rest.partition(b" ")[0]
        if method not in (b"GET", b"HEAD") or not target.startswith(PREFIX):
            return _response("404 Not Found", b"")
        value = self.answers.get(target[len(PREFIX) :])
        if value is None:
            return _response("404 Not Found", b"")
        reply = _response("200 OK", value)
        return reply[: -len(value)] if method == b"HEAD" else reply

    def _write(self, fd: int) -> None:
        conn = self.conns[fd]
        try:
            sent = conn.sock.send(conn.outbox)
        except BlockingIOError:
            return
        except OSError:
            sent = len(conn.outbox)
        conn.outbox = conn.outbox[sent:]
        if not conn.outbox:
            self._close(fd)

    def _close(self, fd: int) -> None:
        conn = self.conns.pop(fd, None)
        if conn is None:
            return
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.selector.unregister(conn.sock)
        conn.sock.close()
        self._resume()  # a descriptor is free again: accept what waits
