"""Two measurements `make bench` adds beside the goals (run in their own interpreters):

- ``ways``: what runs in parallel with ``cryptography`` here. N self-signed EC P-256 CAs; parse, the
  self-signature check, the OpenSSL subject hash, the report entry, and all of a trust file's facts
  (``file_facts.analyze``, the one seam the cold build maps) — each serial, on 2 threads and on 2 forked
  processes (``reconcile/parallel.py``, the product's own map), median of 5.
- ``noop_split``: where a one-shot no-op's time goes, phase by phase (load the state-dir record and the
  stat index, observe, decide, execute, save), in-process on the trees the no-op rows timed, median of 7.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

WAYS = r"""
import datetime as dt, json, statistics, sys, time
from concurrent.futures import ThreadPoolExecutor
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sslreconciler.pki.subject_hash import subject_hash
from sslreconciler.reconcile.file_facts import analyze
from sslreconciler.reconcile.parallel import ParallelMap
from sslreconciler.reconcile.report import CertInfo
n = int(sys.argv[1])
pems = []
for i in range(n):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"probe CA {i}")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(i + 1).not_valid_before(dt.datetime(2025, 1, 1)).not_valid_after(dt.datetime(2035, 1, 1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pems.append(cert.public_bytes(serialization.Encoding.PEM))
certs = [x509.load_pem_x509_certificate(p) for p in pems]
def parse(p): x509.load_pem_x509_certificate(p).subject; return True  # a Certificate does not pickle
def verify(i): certs[i].verify_directly_issued_by(certs[i]); return True
def hashed(i): return subject_hash(certs[i])
def entry(i): return CertInfo.of(certs[i])
def facts(i): return analyze((f"authorities/p{i}.crt", pems[i], ()))
works = {"parse": (parse, pems), "self-signature check": (verify, range(n)), "subject hash": (hashed, range(n)),
         "report entry": (entry, range(n)), "a trust file's facts (analyze)": (facts, range(n))}
pool = ParallelMap(2, thread_min=1, process_min=1)
out = []
for label, (fn, items) in works.items():
    items = list(items)
    row = {"work": label}
    for way in ("serial", "threads", "processes"):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            if way == "serial":
                [fn(i) for i in items]
            elif way == "threads":
                with ThreadPoolExecutor(2) as ex:
                    list(ex.map(lambda c: [fn(i) for i in c], [items[: n // 2], items[n // 2 :]]))
            else:
                pool(fn, items, via="processes")
            times.append(time.perf_counter() - t0)
        row[way] = statistics.median(times) * 1000
    out.append(row)
print(json.dumps(out))
"""

SPLIT = r"""
import json, statistics, sys, time
from pathlib import Path
from sslreconciler.config.desired import load_desired_state
import sslreconciler.reconcile.reconciler as R
ssl_dir, desired_file, state = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
times = {}
def timed(name, key):
    real = getattr(R, name)
    def run(*a, **k):
        t0 = time.perf_counter(); out = real(*a, **k); times.setdefault(key, []).append(time.perf_counter() - t0)
        return out
    setattr(R, name, run)
for name, key in (("load_record", "load the record and the stat index"), ("observe", "observe"),
                  ("decide", "decide"), ("execute", "execute"), ("save_report", "save the report"),
                  ("save_record", "save the record and the index")):
    timed(name, key)
desired = load_desired_state(desired_file)
for _ in range(7):
    t0 = time.perf_counter()
    R.Reconciler(ssl_dir, state, str(desired_file)).run(desired)  # a one-shot's: a memo from the record
    times.setdefault("the whole reconcile", []).append(time.perf_counter() - t0)
print(json.dumps({k: statistics.median(v) * 1000 for k, v in times.items()}))
"""


def ways(n: int) -> list[dict[str, object]]:
    out = subprocess.run([sys.executable, "-c", WAYS, str(n)], check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout)


def noop_split(trees: dict[int, tuple[Path, Path, Path]]) -> dict[str, dict[str, float]]:
    """Per tree size: (ssl dir, desired state, state dir) of a tree already reconciled and aged."""
    result = {}
    for n, (ssl_dir, desired, state) in trees.items():
        argv = [sys.executable, "-c", SPLIT, str(ssl_dir), str(desired), str(state)]
        result[str(n)] = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True, cwd=REPO).stdout)
    return result
