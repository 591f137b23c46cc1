"""A real ACME server for the tests: Debian's pebble (+ pebble-challtestsrv for DNS) on 127.0.0.1.

Pebble's package ships no HTTPS certificate of its own: one is made here from a test CA that the
client is told to trust (the acme block's ca_bundle). Every name resolves to 127.0.0.1 through
challtestsrv, so pebble's HTTP-01 validation connects to 127.0.0.1:<http_port>: a webroot served by
WebrootServer, or the client's own standalone server.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from pkitools import make_ca, make_host, write

BLOCKED = "blocked.example.com"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited {proc.returncode}: {log.read_text() if log else ''}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {log.read_text() if log else ''}")


class Pebble:
    def __init__(self, work: Path, validity_s: int = 3600 * 24 * 90, eab_keys: dict[str, str] | None = None) -> None:
        self.work = work
        self.eab_keys = eab_keys
        work.mkdir(parents=True, exist_ok=True)
        self.validity_s = validity_s
        self.port, self.mgmt_port, self.http_port = free_port(), free_port(), free_port()
        self.dns_port, self.chall_mgmt_port = free_port(), free_port()
        tls_ca = make_ca("pebble-test-https-ca")
        tls = make_host(tls_ca, "localhost", sans=["localhost"])
        self.ca_bundle = write(work / "pebble-https-ca.pem", tls_ca.cert_pem())
        write(work / "https.crt", tls.cert_pem())
        write(work / "https.key", tls.key_pem(), 0o600)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.port}/dir"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
        log = self.work / f"{name}.log"
        fh = log.open("ab")
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                cwd=self.work)
        fh.close()
        self.procs.append(proc)
        return proc, log

    def start(self) -> Pebble:
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(self.work / "https.crt"),
            "privateKey": str(self.work / "https.key"),
            "httpPort": self.http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
            "externalAccountMACKeys": self.eab_keys or {},
            "domainBlocklist": [BLOCKED],
            "certificateValidityPeriod": self.validity_s,
        }}
        (self.work / "pebble-config.json").write_text(json.dumps(config))
        dns, dns_log = self._spawn("challtestsrv", [
            "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
            "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
            "-management", f"127.0.0.1:{self.chall_mgmt_port}"])
        wait_until(lambda: port_answers(self.chall_mgmt_port), 60, "pebble-challtestsrv", dns, dns_log)
        proc, log = self._spawn("pebble", [
            "pebble", "-config", str(self.work / "pebble-config.json"), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
        wait_until(lambda: port_answers(self.port) and port_answers(self.mgmt_port), 120, "pebble", proc, log)
        wait_until(self._directory_answers, 60, "pebble's directory", proc, log)
        return self

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def _directory_answers(self) -> bool:
        with contextlib.suppress(OSError), urllib.request.urlopen(
            self.directory, context=self._context(), timeout=10
        ) as r:
            return "newOrder" in json.loads(r.read())
        return False

    def root_pem(self) -> bytes:
        """Pebble's issuing root (made anew at each start), from its management interface."""
        url = f"https://localhost:{self.mgmt_port}/roots/0"
        with urllib.request.urlopen(url, context=self._context(), timeout=30) as r:
            return r.read()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()


class WebrootServer:
    """The node's web server: serves a directory on 127.0.0.1:port (pebble validates against it)."""

    def __init__(self, webroot: Path, port: int) -> None:
        webroot.mkdir(parents=True, exist_ok=True)
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args) -> None:
                outer.requests.append(self.path)

        handler = functools.partial(Handler, directory=str(webroot))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def acme_block(pebble: Pebble, names: list[str], challenge: dict, **extra) -> dict:
    return {"directory": pebble.directory, "contact": "admin@example.com", "names": names,
            "challenge": challenge, "ca_bundle": str(pebble.ca_bundle), **extra}


def pebble_available() -> bool:
    return bool(shutil.which("pebble") and shutil.which("pebble-challtestsrv"))
