"""The checks the consumer tests make of a real TLS server with independent tools: ``openssl s_client``
(the served certificate's fingerprint, a mutual TLS handshake) and ``curl`` (an HTTPS request with a
client certificate), and the waits on them: each with a deadline, no sleeps."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """``predicate()``'s first truthy value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.05)  # a poll interval, not a wait for an outcome


def serves_tls(port: int) -> bool:
    """Whether a TLS server completes a handshake on ``port`` (not just any listener: a port another
    process took answers a connect too). No client certificate, no verification: under TLS 1.3 the
    client's handshake ends before the server judges the client's (missing) certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw, ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True) is not None
    except (OSError, ssl.SSLError):
        return False


def s_client(port: int, *extra: str | Path, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """A TLS 1.2 handshake (a refused client certificate then fails the handshake itself, as it would not
    under TLS 1.3, where the server's alert comes after it) that sends nothing and closes."""
    argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2", "-showcerts", *map(str, extra)]
    return subprocess.run(argv, input="", capture_output=True, text=True, timeout=timeout)


def served_fingerprint(port: int, client_cert: Path, client_key: Path) -> str:
    """The SHA-256 fingerprint (lower-case hex) of the leaf the server at ``port`` serves."""
    done = s_client(port, "-cert", client_cert, "-key", client_key)
    begin = done.stdout.find("-----BEGIN CERTIFICATE-----")
    end = done.stdout.find("-----END CERTIFICATE-----")
    if begin < 0 or end < 0:
        raise AssertionError(f"no certificate served on {port}: {done.stdout}{done.stderr}")
    pem = done.stdout[begin : end + len("-----END CERTIFICATE-----")] + "\n"
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


def mutual_tls(port: int, ca_file: Path, client_cert: Path, client_key: Path) -> bool:
    """A handshake that verifies the server against ``ca_file`` and presents the client pair: True when
    both sides accepted."""
    done = s_client(port, "-CAfile", ca_file, "-verify_return_error", "-cert", client_cert, "-key", client_key)
    return done.returncode == 0 and "Verify return code: 0 (ok)" in done.stdout


def curl_get(
    port: int, host: str, ca_file: Path, client_cert: Path, client_key: Path
) -> subprocess.CompletedProcess[str]:
    """``curl`` over HTTPS to ``host`` (resolved to 127.0.0.1), verifying the server's name and chain;
    its stdout is the HTTP status."""
    return subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "15",
            "--resolve",
            f"{host}:{port}:127.0.0.1",
            "--cacert",
            str(ca_file),
            "--cert",
            str(client_cert),
            "--key",
            str(client_key),
            f"https://{host}:{port}/",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
