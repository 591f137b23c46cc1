"""Encoding a 10,000-certificate JKS truststore: the old pyjks-based encoder vs our writer (stores/jks_writer.py).

old  what stores/jks.py did before issue 15: pyjks TrustedCertEntry.new + KeyStore.new, entries framed by
     pyjks's _write_trusted_cert, joined once (pyjks's own ``saves`` grows the file with ``+=``: quadratic).
new  sslreconciler.stores.jks.encode_jks: framing from precomputed parts, one join, no pyjks.
Also the one-off import cost each brings into a cold process (each measured in a fresh interpreter).
Both outputs are read back by pyjks and must hold the same entries.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from truststore_ref import make_certs  # noqa: E402

from sslreconciler.stores.entries import StoreContent  # noqa: E402
from sslreconciler.stores.jks import encode_jks, read_jks  # noqa: E402


def encode_jks_old(content: StoreContent, password: str) -> bytes:
    """The pre-issue-15 encoder, verbatim in substance (trusted entries only are benchmarked)."""
    import jks

    entries: list[Any] = []
    for key in content.keys:
        entry = jks.PrivateKeyEntry.new(key.alias, list(key.chain), key.key_der, "pkcs8")
        entry.encrypt(password)
        entries.append(entry)
    entries.extend(jks.TrustedCertEntry.new(alias, der) for alias, der in content.trusted)
    store = jks.KeyStore.new("jks", entries)
    parts = [struct.pack(">LLL", 0xFEEDFEED, 2, len(store.entries))]
    for alias, item in store.entries.items():
        if isinstance(item, jks.TrustedCertEntry):
            parts.append(store._write_trusted_cert(alias, item))
        else:
            parts.append(store._write_private_key(alias, item, password))
    body = b"".join(parts)
    return body + hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + body).digest()


NEW_IMPORT = "import sys, sslreconciler.stores.jks; assert 'jks' not in sys.modules"


def import_cost(statement: str, runs: int) -> float:
    """Median wall seconds of a fresh interpreter running ``statement``, minus one running ``pass``."""

    def median(code: str) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(REPO / "src")})
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return median(statement) - median("pass")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_certs(Path(tmp), "cas", args.n)
        trusted = {
            p.stem: x509.load_pem_x509_certificate(p.read_bytes()).public_bytes(serialization.Encoding.DER)
            for p in Path(tmp).iterdir()
        }
    content = StoreContent.of(trusted=trusted)
    old_t: list[float] = []
    new_t: list[float] = []
    for i in range(args.runs):  # alternated
        for which in (("old", "new") if i % 2 == 0 else ("new", "old")):
            t0 = time.perf_counter()
            data = encode_jks_old(content, "changeit") if which == "old" else encode_jks(content, "changeit")
            (old_t if which == "old" else new_t).append(time.perf_counter() - t0)
    assert read_jks(encode_jks_old(content, "changeit"), "changeit") == read_jks(data, "changeit") == content
    print(f"{len(content.trusted):,} trusted certificates ({len(data) / 1e6:.1f} MB), median of {args.runs}:")
    for label, times in (("old (pyjks entries + join)", old_t), ("new (stores/jks_writer.py)", new_t)):
        print(f"  {label}:  {statistics.median(times) * 1000:8.1f} ms  (min {min(times) * 1000:.1f})")
    print(f"  speed-up {statistics.median(old_t) / statistics.median(new_t):.0f}x")
    print("import cost in a fresh interpreter (median of 5, minus `python -c pass`):")
    print(f"  import jks (pyjks, the old write path):        {import_cost('import jks', 5) * 1000:6.1f} ms")
    print(f"  import sslreconciler.stores.jks (the new one): "
          f"{import_cost(NEW_IMPORT, 5) * 1000:6.1f} ms (cryptography included; pyjks not loaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
