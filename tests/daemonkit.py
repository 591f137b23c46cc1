"""Drive the real daemon as a subprocess: config, sd_notify socket, health over its Unix socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from userkit import user_python

from pkitools import Node


def http_get(sock_path: Path, resource: str = "/health", timeout: float = 30.0) -> tuple[int, bytes]:
    """A deliberately naive HTTP/1.1 client, independent of the product's."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(f"GET {resource} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class RunningDaemon:
    def __init__(self, node: Node, work: Path, settings: str = "", env: dict[str, str] | None = None,
                 wrapper: list[str] | None = None) -> None:
        self.wrapper = wrapper or []
        self.node = node
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        # AF_UNIX paths are limited to 108 bytes: keep sockets in a short directory
        self.sockdir = Path(tempfile.mkdtemp(prefix="sr-", dir="/tmp"))
        self.socket = self.sockdir / "run" / "health.sock"
        self.config = work / "sslreconciler.toml"
        self.config.write_text(
            f'ssl_dir = "{node.ssl_dir}"\nstate_dir = "{work / "state"}"\ndesired_state = "{node.desired}"\n'
            f'socket = "{self.socket}"\nlog_format = "json"\n{settings}\n'
        )
        self.notify_path = self.sockdir / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(0.05)
        self.messages: list[str] = []
        self.log_path = work / "daemon.log"
        self.env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), **(env or {})}
        if self.wrapper and not (env and "SSLRECONCILER_STATE_DIR" in env):
            # A daemon run as another user cannot reach the state dir conftest gives root's commands (in
            # root's 0700 tmp_path): it keeps its state where its settings say, in its own work dir.
            self.env["SSLRECONCILER_STATE_DIR"] = str(work / "state")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> RunningDaemon:
        self._log = self.log_path.open("ab")
        seen = len(self.drain())  # a READY=1 of an earlier run must not count
        # Under a wrapper (another user, fewer capabilities) the interpreter is one any user can run.
        python = user_python() if self.wrapper else sys.executable
        self.proc = subprocess.Popen([*self.wrapper, python, "-m", "sslreconciler", "run", "--config", str(self.config)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        if wait:
            self.wait_message("READY=1", timeout=60, after=seen)
        return self

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.notify.recv(65536).decode())
            except (TimeoutError, BlockingIOError):
                return self.messages

    def wait_message(self, text: str, timeout: float = 60, after: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            for m in self.messages[after:]:
                if text in m.splitlines():
                    return m
            assert self.proc is None or self.proc.poll() is None, f"daemon exited: {self.logs_text()}"
        raise AssertionError(f"no {text!r} from sd_notify in {timeout}s: {self.messages}")

    def health(self) -> tuple[int, dict[str, Any]]:
        code, body = http_get(self.socket)
        return code, json.loads(body)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                _, doc = self.health()
            except (ConnectionResetError, BrokenPipeError):
                # at its connection cap the daemon answers 503 and closes without reading the request (a
                # reset, or a broken pipe when the close comes before the request is sent): slots held by
                # clients just gone free up in a moment; a dead daemon fails at once
                assert self.proc is None or self.proc.poll() is None, f"daemon exited: {self.logs_text()}"
                time.sleep(0.05)
                continue
            if predicate(doc):
                return doc
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: status {doc.get('status')} {doc.get('findings')}")

    def reconciles(self) -> int:
        return int(self.health()[1]["counts"]["reconciles"])

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        self.notify.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def logs_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def wait_until(predicate: Callable[[], Any], timeout: float = 60, what: str = "",
               proc: subprocess.Popen[bytes] | None = None, log: Path | None = None, poll: float = 0.05) -> Any:
    """Poll ``predicate`` every ``poll`` s until it returns something truthy; deadlines are generous for a
    loaded machine. Given ``proc``, a process that exits first fails the wait at once (with ``log``'s text)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}: {log.read_text() if log else ''}")
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: {log.read_text() if log else ''}")


def fingerprint(doc: dict[str, Any], artifact: str = "ssl-web.keystore") -> str | None:
    cert = doc["artifacts"].get(artifact, {}).get("certificate")
    return cert["fingerprint_sha256"] if cert else None
