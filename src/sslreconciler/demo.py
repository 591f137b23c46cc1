"""A demo node directory in the seed layout, for `make run` and for trying things out."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from sslreconciler.fsio import atomic_write
from sslreconciler.pki.issue import cert_pem, generate_key, issue_host_cert, key_pem, make_ca


def make_demo(ssl_dir: Path, hostname: str) -> None:
    """CA in authorities/, ssl.key/ssl.crt for ``hostname``; the web pair falls back to them."""
    (ssl_dir / "authorities").mkdir(parents=True, exist_ok=True)
    ca_key = generate_key()
    ca = make_ca(f"ca.{hostname}", ca_key)
    host_key = generate_key()
    host = issue_host_cert(ca_key, ca, hostname, host_key)
    atomic_write(ssl_dir / "authorities" / f"ca.{hostname}.crt", cert_pem(ca), 0o644)
    atomic_write(ssl_dir / "ssl.key", key_pem(host_key), 0o600)
    atomic_write(ssl_dir / "ssl.crt", cert_pem(host), 0o644)
    # The CA key stays beside the node dir (never inside it) so the README's web-cert steps can sign with it.
    atomic_write(ssl_dir.parent / "demo-ca.key", key_pem(ca_key), 0o600)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sslreconciler.demo SSL_DIR", file=sys.stderr)
        return 2
    ssl_dir = Path(argv[0])
    if (ssl_dir / "ssl.crt").exists():
        print(f"{ssl_dir}: demo PKI already there")
        return 0
    hostname = socket.getfqdn()
    make_demo(ssl_dir, hostname)
    print(f"{ssl_dir}: demo PKI made for {hostname} (CA key in {ssl_dir.parent / 'demo-ca.key'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
