"""A demo node directory in the seed layout, for `make run` and for trying things out."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from cryptography import x509

from sslreconciler.fsio import atomic_write
from sslreconciler.model.findings import SourceError
from sslreconciler.pki.issue import cert_pem, generate_key, issue_host_cert, key_pem, make_ca
from sslreconciler.pki.sources import PrivateKey, parse_certificates, parse_private_key

# The demo CA's key, kept beside the node dir (never in it) so a later `make run` can make another spare.
CA_KEY = "demo-ca.key"


def make_demo(ssl_dir: Path, hostname: str) -> None:
    """CA in authorities/, ssl.key/ssl.crt for ``hostname``; the web pair falls back to them."""
    (ssl_dir / "authorities").mkdir(parents=True, exist_ok=True)
    ca_key = generate_key()
    ca = make_ca(f"ca.{hostname}", ca_key)
    host_key = generate_key()
    host = issue_host_cert(ca_key, ca, hostname, host_key)
    atomic_write(ssl_dir.parent / CA_KEY, key_pem(ca_key), 0o600)
    atomic_write(ssl_dir / "authorities" / f"ca.{hostname}.crt", cert_pem(ca), 0o644)
    atomic_write(ssl_dir / "ssl.key", key_pem(host_key), 0o600)
    atomic_write(ssl_dir / "ssl.crt", cert_pem(host), 0o644)
    make_spare_web(ssl_dir, hostname, ca_key, ca)


def make_spare_web(ssl_dir: Path, hostname: str, ca_key: PrivateKey, ca: x509.Certificate) -> Path:
    """A second web pair beside the node dir, for the README's "drop in a new web certificate" step."""
    spare = ssl_dir.parent / "new-web"
    spare.mkdir(exist_ok=True)
    web_key = generate_key()
    atomic_write(spare / "ssl-web.key", key_pem(web_key), 0o600)
    atomic_write(spare / "ssl-web.crt", cert_pem(issue_host_cert(ca_key, ca, hostname, web_key)), 0o644)
    return spare


def refill_spare(ssl_dir: Path, hostname: str) -> str:
    """On a repeated `make run`: a new spare web pair when the last one was used. What was done."""
    spare = ssl_dir.parent / "new-web"
    if (spare / "ssl-web.crt").exists() and (spare / "ssl-web.key").exists():
        return f"{ssl_dir}: demo PKI already there; the spare web pair waits in {spare}"
    ca_file = ssl_dir / "authorities" / f"ca.{hostname}.crt"
    try:
        ca_key = parse_private_key((ssl_dir.parent / CA_KEY).read_bytes(), CA_KEY)
        ca = parse_certificates(ca_file.read_bytes(), str(ca_file))[0]
    except (OSError, SourceError):
        return f"{ssl_dir}: demo PKI already there (made without {CA_KEY}: remove {ssl_dir.parent} to start over)"
    make_spare_web(ssl_dir, hostname, ca_key, ca)
    return f"{ssl_dir}: demo PKI already there; a new spare web pair waits in {spare}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sslreconciler.cluster.demo SSL_DIR", file=sys.stderr)
        return 2
    ssl_dir = Path(argv[0])
    hostname = socket.getfqdn()
    if (ssl_dir / "ssl.crt").exists():
        print(refill_spare(ssl_dir, hostname))
        return 0
    make_demo(ssl_dir, hostname)
    print(f"{ssl_dir}: demo PKI made for {hostname}; a spare web pair waits in {ssl_dir.parent / 'new-web'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
