"""A real ACME server for the tests: Debian's pebble (+ pebble-challtestsrv for DNS) on 127.0.0.1.

Pebble's package ships no HTTPS certificate of its own: one is made here from a test CA that the
client is told to trust (the acme block's ca_bundle). Every name resolves to 127.0.0.1 through
challtestsrv, so pebble's HTTP-01 validation connects to 127.0.0.1:<http_port>: a webroot served by
WebrootServer, or the client's own standalone server.

Pebble cannot be made to lie, so FakeAcme is an ACME server of our own that does, on 127.0.0.1 only;
StrayClient holds connections to a port open; run_measured runs a command and says how long it took
and how much memory it peaked at.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from daemonkit import wait_until

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



# -- a lying ACME server -------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeAcme:
    """An ACME server (RFC 8555, just enough for certbot's client to reach the download) that lies as told.

    HTTPS on 127.0.0.1 only, a thread of the test process. Every authorization is already valid (no
    challenge), and the finalize request's CSR is signed by an intermediate of its own root, with the
    CSR's names unless the test says otherwise. What it can be told:

    - ``names``: sign the CSR's key for these names instead;
    - ``intermediate_is_ca``: False makes the intermediate CA:FALSE (it still signs the leaf);
    - ``chain_order``: "leaf-first" (honest), "reversed" (intermediate, then leaf);
    - ``download_bytes``: answer the certificate download with that many bytes, streamed;
    - ``download_cut``: with ``download_bytes``, close the connection half-way through;
    - ``plain_resources``: the directory names http:// URLs (on a plain listener that records hits);
    - ``problem_detail``: refuse the new account with a problem document carrying this detail;
    - ``trickle``: answer the directory one byte a second, for ever (until stopped).
    """

    def __init__(self, work: Path, *, names: list[str] | None = None, intermediate_is_ca: bool = True,
                 chain_order: str = "leaf-first", download_bytes: int | None = None, download_cut: bool = False,
                 plain_resources: bool = False, problem_detail: str | None = None, trickle: bool = False) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        self.names, self.intermediate_is_ca, self.chain_order = names, intermediate_is_ca, chain_order
        self.download_bytes, self.download_cut, self.plain_resources = download_bytes, download_cut, plain_resources
        self.problem_detail, self.trickle = problem_detail, trickle
        self.root = make_ca("fake-acme-root")
        if intermediate_is_ca:
            self.intermediate = make_ca("fake-acme-intermediate", issuer=self.root)
        else:  # shaped as a leaf: CA:FALSE, yet it signs
            self.intermediate = make_host(self.root, "fake-acme-intermediate")
        tls_ca = make_ca("fake-acme-https-ca")
        tls = make_host(tls_ca, "localhost", sans=["localhost"])
        self.ca_bundle = write(work / "https-ca.pem", tls_ca.cert_pem())
        write(work / "https.crt", tls.cert_pem())
        write(work / "https.key", tls.key_pem(), 0o600)
        self.requests: list[tuple[str, str]] = []  # (method, path) on the HTTPS listener
        self.plain_requests: list[tuple[str, str]] = []  # on the plain-HTTP listener
        self.issued: list[x509.Certificate] = []
        self.stopping = threading.Event()
        self.servers: list[http.server.ThreadingHTTPServer] = []

    @property
    def directory(self) -> str:
        return f"https://localhost:{self.port}/dir"

    def start(self) -> FakeAcme:
        https = self._server(self.requests)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.work / "https.crt", self.work / "https.key")
        https.socket = context.wrap_socket(https.socket, server_side=True)
        self.port = https.server_address[1]
        self.plain_port = self._server(self.plain_requests).server_address[1]
        return self

    def _server(self, log: list[tuple[str, str]]) -> http.server.ThreadingHTTPServer:
        handler = functools.partial(_FakeAcmeHandler, self, log)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.block_on_close = False
        self.servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def stop(self) -> None:
        self.stopping.set()
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def url(self, path: str, plain: bool = False) -> str:
        if plain:
            return f"http://127.0.0.1:{self.plain_port}{path}"
        return f"https://localhost:{self.port}{path}"

    def directory_doc(self) -> dict:
        plain = self.plain_resources
        return {"newNonce": self.url("/nonce", plain), "newAccount": self.url("/account", plain),
                "newOrder": self.url("/order", plain), "revokeCert": self.url("/revoke"),
                "keyChange": self.url("/key-change")}

    def sign(self, csr: x509.CertificateSigningRequest) -> list[x509.Certificate]:
        try:
            wanted = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = wanted.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            names = []
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in (self.names if self.names is not None else names)]), critical=False)
        )
        leaf = builder.sign(self.intermediate.key, hashes.SHA256())
        self.issued.append(leaf)
        chain = [leaf, self.intermediate.cert]
        return list(reversed(chain)) if self.chain_order == "reversed" else chain


class _FakeAcmeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, fake: FakeAcme, log: list, *args, **kwargs) -> None:
        self.fake, self.log = fake, log
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Replay-Nonce", _b64(os.urandom(16)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, doc: dict, headers: dict | None = None, ctype: str = "application/json") -> None:
        self._send(code, json.dumps(doc).encode(), ctype, headers)

    def do_HEAD(self) -> None:
        self.log.append(("HEAD", self.path))
        self._send(200, b"")

    def do_GET(self) -> None:
        self.log.append(("GET", self.path))
        if self.path == "/dir" and self.fake.trickle:
            return self._trickle()
        if self.path == "/dir":
            return self._json(200, self.fake.directory_doc())
        self._send(204 if self.path == "/nonce" else 404, b"")

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        with contextlib.suppress(OSError):
            while not self.fake.stopping.wait(1):
                self.wfile.write(b" ")
                self.wfile.flush()

    def do_POST(self) -> None:
        self.log.append(("POST", self.path))
        length = int(self.headers.get("Content-Length") or 0)
        jws = json.loads(self.rfile.read(min(length, 1 << 20)) or b"{}")
        payload = json.loads(_unb64(jws["payload"])) if jws.get("payload") else None
        fake, url = self.fake, self.fake.url
        if self.path == "/account":
            if fake.problem_detail is not None:
                return self._json(400, {"type": "urn:ietf:params:acme:error:malformed",
                                        "detail": fake.problem_detail}, ctype="application/problem+json")
            return self._json(201, {"status": "valid"}, {"Location": url("/acct/1")})
        name = None
        if self.path == "/order":
            fake.order_names = [i["value"] for i in payload["identifiers"]]
        names = getattr(fake, "order_names", [])
        order = {"status": "ready", "identifiers": [{"type": "dns", "value": n} for n in names],
                 "authorizations": [url(f"/authz/{i}") for i in range(len(names))], "finalize": url("/finalize")}
        if self.path == "/order":
            return self._json(201, order, {"Location": url("/order/1")})
        if self.path.startswith("/authz/"):
            name = names[int(self.path.rsplit("/", 1)[1])]
            return self._json(200, {"identifier": {"type": "dns", "value": name}, "status": "valid",
                                    "challenges": [{"type": "http-01", "url": url("/chall"), "status": "valid",
                                                    "token": _b64(os.urandom(32))}]})
        if self.path == "/finalize":
            csr = x509.load_der_x509_csr(_unb64(payload["csr"]))
            fake.chain = fake.sign(csr)
        if self.path in ("/finalize", "/order/1"):
            return self._json(200, {**order, "status": "valid", "certificate": url("/cert")})
        if self.path == "/cert":
            return self._certificate()
        self._send(404, b"")

    def _certificate(self) -> None:
        ctype = "application/pem-certificate-chain"
        if self.fake.download_bytes is None:
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.fake.chain)
            return self._send(200, pem, ctype)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(self.fake.download_bytes))
        self.send_header("Replay-Nonce", _b64(os.urandom(16)))
        self.end_headers()
        block = b"A" * 63 + b"\n"
        chunk = block * (1 << 14)  # 1 MiB
        left = self.fake.download_bytes // (2 if self.fake.download_cut else 1)
        with contextlib.suppress(OSError):
            while left > 0:
                part = chunk[:left]
                self.wfile.write(part)
                left -= len(part)
            if self.fake.download_cut:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True


class StrayClient:
    """Someone on the network holding connections to a port open (made as soon as the port answers),
    trickling a byte into each every ``every`` s; a connection the server cuts is opened again."""

    def __init__(self, port: int, connections: int = 4, every: float = 2.0) -> None:
        self.port, self.connections, self.every = port, connections, every
        self.stopping = threading.Event()
        self.connected = 0
        self.cut = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        held: dict[socket.socket, float] = {}
        try:
            while not self.stopping.is_set():
                while len(held) < self.connections:
                    s = socket.socket()
                    s.settimeout(1)
                    try:
                        s.connect(("127.0.0.1", self.port))
                    except OSError:
                        s.close()
                        break
                    held[s] = time.monotonic()
                    self.connected += 1
                for s, last in list(held.items()):
                    if time.monotonic() - last < self.every:
                        continue
                    try:
                        s.send(b"G")
                        held[s] = time.monotonic()
                    except OSError:  # cut by the server: open another
                        del held[s]
                        s.close()
                        self.cut += 1
                self.stopping.wait(0.02)
        finally:
            for s in held:
                s.close()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)


# The measured command is started by a small Python of its own: a child's peak RSS (ru_maxrss) counts
# the memory of the process it was forked from (exec records the old address space's high-water mark), so
# a child forked from pytest, which may have grown large, would report pytest's peak, not its own.
_MEASURE = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:  # killed by a signal: end the same way
    if -code != signal.SIGKILL:
        signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def run_measured(argv: list[str], timeout: float, env: dict[str, str] | None = None
                 ) -> tuple[int, str, str, float, int]:
    """Run ``argv``: (exit code, stdout, stderr, seconds, peak RSS in KiB of that process alone)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file, \
            tempfile.NamedTemporaryFile("r") as rss_file:
        proc = subprocess.Popen([sys.executable, "-c", _MEASURE, rss_file.name, *map(str, argv)], stdout=out_file,
                                stderr=err_file, env={**os.environ, **(env or {})}, start_new_session=True)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"{argv} still running after {timeout} s") from None
        elapsed = time.monotonic() - started
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(errors="replace"), err_file.read().decode(errors="replace")
        maxrss = int(rss_file.read() or 0)
    assert maxrss, f"{argv}: no peak RSS measured (rc {proc.returncode}): {err[-2000:]}"
    return proc.returncode, out, err, elapsed, maxrss
