"""`make bench`: measure the daemon and write docs/benchmarks.md.

Reaction latency: a new web pair renamed into place -> /health shows the new certificate, with the
default settings (quiet period 0.2 s). Idle: CPU time and RSS of the daemon over a quiet minute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from cryptography import __version__ as crypto_version  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402

from sslreconciler import __version__  # noqa: E402
from sslreconciler.pki.issue import cert_pem, generate_key, issue_host_cert, key_pem, make_ca  # noqa: E402


def http_get(path: Path) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])


def web_fingerprint(doc: dict) -> str | None:
    cert = doc.get("artifacts", {}).get("ssl-web.keystore", {}).get("certificate")
    return cert["fingerprint_sha256"] if cert else None


def proc_stat(pid: int) -> tuple[float, int, int]:
    """CPU seconds (user+system), RSS and peak RSS in bytes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
    hwm = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
    return cpu, rss, hwm


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return (f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Python {platform.python_version()}, "
            f"cryptography {crypto_version}, sslreconciler {__version__}")


def bench_daemon(swaps: int, idle_s: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="srbench-", dir="/tmp"))
    try:
        ssl_dir = work / "ssl"
        (ssl_dir / "authorities").mkdir(parents=True)
        host = "bench.example.com"
        ca_key = generate_key()
        ca = make_ca(f"ca.{host}", ca_key)
        key = generate_key()
        (ssl_dir / "authorities" / f"ca.{host}.crt").write_bytes(cert_pem(ca))
        (ssl_dir / "ssl.key").write_bytes(key_pem(key))
        os.chmod(ssl_dir / "ssl.key", 0o600)
        (ssl_dir / "ssl.crt").write_bytes(cert_pem(issue_host_cert(ca_key, ca, host, key)))
        desired = work / "desired.json"
        desired.write_text(json.dumps({"hostname": host}))
        pairs = []
        for _ in range(swaps):
            k = generate_key()
            c = issue_host_cert(ca_key, ca, host, k)
            pairs.append((key_pem(k), cert_pem(c), c.fingerprint(hashes.SHA256()).hex()))
        sock = work / "h.sock"
        config = work / "s.toml"
        config.write_text(f'ssl_dir = "{ssl_dir}"\nstate_dir = "{work / "state"}"\ndesired_state = "{desired}"\n'
                          f'socket = "{sock}"\nlog_format = "json"\n')
        log = (work / "daemon.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "sslreconciler", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            while not sock.exists():
                assert proc.poll() is None and time.monotonic() < deadline, "daemon did not start"
                time.sleep(0.05)
            time.sleep(0.5)
            staging = ssl_dir / ".incoming"
            staging.mkdir()
            latencies = []
            for key_bytes, cert_bytes, fp in pairs:
                (staging / "k").write_bytes(key_bytes)
                os.chmod(staging / "k", 0o600)
                (staging / "c").write_bytes(cert_bytes)
                os.rename(staging / "k", ssl_dir / "ssl-web.key")
                os.rename(staging / "c", ssl_dir / "ssl-web.crt")
                t0 = time.perf_counter()
                while web_fingerprint(http_get(sock)) != fp:
                    if time.perf_counter() - t0 > 30:
                        raise RuntimeError("swap not seen within 30 s")
                    time.sleep(0.002)
                latencies.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.3)  # let the daemon settle, as swaps are hours apart in life
            time.sleep(2.0)
            count_before = http_get(sock)["counts"]["reconciles"]
            cpu0, _, _ = proc_stat(proc.pid)
            t0 = time.monotonic()
            time.sleep(idle_s)
            cpu1, rss, hwm = proc_stat(proc.pid)
            elapsed = time.monotonic() - t0
            count_after = http_get(sock)["counts"]["reconciles"]
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
        return {
            "latencies": latencies,
            "idle_cpu_pct": 100 * (cpu1 - cpu0) / elapsed,
            "idle_s": elapsed,
            "rss": rss,
            "hwm": hwm,
            "idle_reconciles": count_after - count_before,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(result: dict, swaps: int) -> str:
    lat = result["latencies"]
    med, p99 = statistics.median(lat), percentile(lat, 0.99)
    target = 200 + 30
    return f"""# Benchmarks

Written by `make bench` ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC) on {machine()}.
Timings are never asserted in tests; this page is where they live.

## Daemon reaction latency

A new `ssl-web.key` + `ssl-web.crt` pair is renamed into place; the clock stops when `GET /health`
reports the new certificate's fingerprint for `ssl-web.keystore` (polled every 2 ms). Default settings
(quiet period 0.2 s), {swaps} swaps, RSA-2048, modern PKCS#12 profile.

| metric | value | target |
|---|---|---|
| p50 | {med:.1f} ms | ≤ quiet period + 30 ms = {target} ms: {"met" if med <= target else "MISSED"} |
| p99 | {p99:.1f} ms | |
| min / max | {min(lat):.1f} / {max(lat):.1f} ms | |

Most of it is the quiet period itself (200 ms of calm after the last event, so that a key-then-cert
copy is one reconcile); the rest is the reconcile (parse, verify, encode two stores, write, fsync).

## Daemon at rest

After the swaps, {result["idle_s"]:.0f} s with nothing changing.

| metric | value | target |
|---|---|---|
| CPU | {result["idle_cpu_pct"]:.3f} % | < 0.1 %: {"met" if result["idle_cpu_pct"] < 0.1 else "MISSED"} |
| RSS at the end | {result["rss"] / 2**20:.1f} MiB | < 60 MB: {"met" if result["rss"] < 60e6 else "MISSED"} |
| peak RSS (VmHWM) | {result["hwm"] / 2**20:.1f} MiB | |
| reconciles while idle | {result["idle_reconciles"]} | 0 (resync every 300 s) |
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swaps", type=int, default=60)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    result = bench_daemon(args.swaps, args.idle)
    text = render(result, args.swaps)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
