"""`make bench`: measure, side by side with the classic openssl + keytool way, into docs/benchmarks.md.

1. one-shot `sslreconciler reconcile` vs benchmarks/keytool-pipeline.sh on the same trees (1..1,000 certs),
   and the one-shot no-op's growth from the seed to 1,000 authorities
2. in-process reconcile: full rebuild and no-op
3. daemon reaction latency (rename into place -> /health shows it) and the daemon at rest
4. a cold 10,000-certificate truststore + hash links vs one JVM + openssl rehash (benchmarks/goal_truststore.py)
5. CLI start-up: status vs the bare interpreter, --help, the no-op reconcile; and the floors (benchmarks/floors.py)
Every comparison is measured alternately in the same run; figures are medians with ranges; the page
(benchmarks/page.py) says met or MISSED against issue 27's goals. The full run takes about 10 minutes
on 2 cores; --quick about 4.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

import floors  # noqa: E402
import goal_truststore  # noqa: E402
import page  # noqa: E402
import probes  # noqa: E402
from cryptography import __version__ as crypto_version  # noqa: E402
from sslreconciler.reconcile.stat_index import RACY_MARGIN_NS  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402

from sslreconciler import __version__  # noqa: E402
from sslreconciler.pki.issue import KeyType, cert_pem, generate_key, issue_host_cert, key_pem, make_ca  # noqa: E402
from sslreconciler.pki.sources import PrivateKey  # noqa: E402


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


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return (f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Python {platform.python_version()}, "
            f"cryptography {crypto_version}, sslreconciler {__version__}")


@dataclass(frozen=True)
class Tree:
    """A seed-layout node directory made for a measurement, and the CA that signed it."""

    ssl_dir: Path
    desired: Path
    host: str
    ca_key: PrivateKey
    ca: x509.Certificate

    def web_pairs(self, count: int) -> list[tuple[bytes, bytes, str]]:
        """New web pairs from the same CA: (key PEM, cert PEM, SHA-256 fingerprint)."""
        pairs = []
        for _ in range(count):
            key = generate_key()
            cert = issue_host_cert(self.ca_key, self.ca, self.host, key)
            pairs.append((key_pem(key), cert_pem(cert), cert.fingerprint(hashes.SHA256()).hex()))
        return pairs


def make_tree(root: Path, n_trust: int = 1, host: str = "bench.example.com", ca_type: KeyType = "ec-p256") -> Tree:
    """A seed-layout ssl dir with ``n_trust`` certificates in authorities/ (the CA and n-1 peers)."""
    ssl_dir = root / "ssl"
    (ssl_dir / "authorities").mkdir(parents=True)
    ca_key = generate_key(ca_type)
    ca = make_ca(f"ca.{host}", ca_key)
    (ssl_dir / "authorities" / f"ca.{host}.crt").write_bytes(cert_pem(ca))
    key = generate_key()
    (ssl_dir / "ssl.key").write_bytes(key_pem(key))
    os.chmod(ssl_dir / "ssl.key", 0o600)
    (ssl_dir / "ssl.crt").write_bytes(cert_pem(issue_host_cert(ca_key, ca, host, key)))
    for i in range(n_trust - 1):
        peer = generate_key("ec-p256")
        (ssl_dir / "authorities" / f"peer{i:05d}.crt").write_bytes(cert_pem(issue_host_cert(ca_key, ca, f"p{i}.x", peer)))
    desired = root / "desired.json"
    desired.write_text(json.dumps({"hostname": host}))
    return Tree(ssl_dir, desired, host, ca_key, ca)


def bench_daemon(swaps: int, idle_s: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="srbench-", dir="/tmp"))
    try:
        tree = make_tree(work, ca_type="rsa2048")
        ssl_dir, desired = tree.ssl_dir, tree.desired
        pairs = tree.web_pairs(swaps)
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



def aged() -> None:
    """Let the sources just copied grow older than the stat index's racy margin: a node's sources are
    rarely seconds old when it reconciles, and a source changed within the margin of the run that
    recorded it is read again on purpose (reconcile/stat_index.py)."""
    time.sleep(RACY_MARGIN_NS / 1e9 + 0.05)


def fresh_copy(ssl_dir: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ssl_dir, dest, symlinks=True)
    for name in ("ssl.keystore", "ssl.p12", "ssl-web.keystore", "ssl-web.p12", "authorities.jks"):
        (dest / name).unlink(missing_ok=True)
    return dest


def timed(argv: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def reconcile_argv(target: Path, desired: Path, state: Path) -> list[str]:
    return [sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(target), "--desired-state",
            str(desired), "--state-dir", str(state)]


def bench_one_shot(work: Path, sizes: list[int], keytool_max: int, runs: int) -> list[dict]:
    """Fresh builds, ours and the pipeline's alternated on copies of the same tree; then the no-op."""
    rows = []
    for n in sizes:
        made = make_tree(work / f"tree{n}", n)
        tree, desired = made.ssl_dir, made.desired
        count = runs if n <= 30 else max(3, runs - 2)
        ours, theirs = [], []
        for _ in range(count):  # alternate, so machine noise hits both sides alike
            target = fresh_copy(tree, work / "ours")
            shutil.rmtree(work / "state", ignore_errors=True)
            ours.append(timed(reconcile_argv(target, desired, work / "state"), cwd=REPO))
            if n <= keytool_max:
                target = fresh_copy(tree, work / "theirs")
                theirs.append(timed(["bash", str(REPO / "benchmarks" / "keytool-pipeline.sh"), str(target),
                                     "bench.example.com"]))
        # the no-op: the same tree again, state dir kept (its record spares reopening the stores)
        target = fresh_copy(tree, work / f"noop{n}")
        aged()
        noop_cmd = reconcile_argv(target, desired, work / f"noop{n}-state")
        timed(noop_cmd, cwd=REPO)
        noop = [timed(noop_cmd, cwd=REPO) for _ in range(count)]
        rows.append({"n": n, "runs": count, "ours": ours, "theirs": theirs, "noop": noop})
    return rows


def bench_noop_growth(work: Path, big: int, runs: int) -> dict:
    """The one-shot no-op on the seed and on ``big`` authorities, alternated (the trees bench_one_shot left)."""
    argvs = {}
    for n in (1, big):
        made = work / f"tree{n}"
        if not made.exists():
            make_tree(made, n)
        target = fresh_copy(made / "ssl", work / f"growth{n}")
        aged()
        argvs[n] = reconcile_argv(target, made / "desired.json", work / f"growth{n}-state")
        timed(argvs[n], cwd=REPO)  # the first run builds; every later one is a no-op
    times: dict[int, list[float]] = {1: [], big: []}
    for i in range(runs):
        for n in (1, big) if i % 2 == 0 else (big, 1):
            times[n].append(timed(argvs[n], cwd=REPO))
    growth = [b / s for s, b in zip(times[1], times[big], strict=True)]
    split = probes.noop_split({n: (Path(argv[5]), Path(argv[7]), Path(argv[9])) for n, argv in argvs.items()})
    return {"n": big, "seed": times[1], "big": times[big], "pairwise": growth,
            "profile": floors.profile_top(argvs[big][1:]), "split": split}


IN_PROCESS = r"""
import json, os, shutil, statistics, sys, time
from pathlib import Path
from sslreconciler.reconcile.memo import ReconcileCache
from sslreconciler.config.desired import DesiredState
from sslreconciler.reconcile.reconciler import Reconciler
tree, scratch, profile = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
desired = DesiredState(hostname="bench.example.com", pkcs12_profile=profile)
full, noop = [], []
for _ in range(7):
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(tree, scratch, symlinks=True)
    time.sleep(2.05)  # older than the stat index's racy margin, as a node's sources are (run.py: aged)
    # the daemon's Reconciler: its own memo, the report saved in the state dir after every run
    reconciler = Reconciler(scratch, Path(str(scratch) + "-state"), "none.json", memo=ReconcileCache())
    t0 = time.perf_counter(); report = reconciler.run(desired).report; full.append(time.perf_counter() - t0)
    assert report.status == "ok", report.render_text()
    for _ in range(5):
        t0 = time.perf_counter(); report = reconciler.run(desired).report; noop.append(time.perf_counter() - t0)
        assert all(a.action == "unchanged" for a in report.artifacts)
print(json.dumps({"full": full, "noop": noop}))
"""




def bench_in_process(work: Path, sizes: list[int]) -> list[dict]:
    rows = []
    for n in sizes:
        tree = make_tree(work / f"inproc{n}", n).ssl_dir if not (work / f"tree{n}").exists() else work / f"tree{n}" / "ssl"
        for profile in ("modern", "legacy") if n == 1 else ("modern",):
            out = subprocess.run([sys.executable, "-c", IN_PROCESS, str(tree), str(work / "scratch"), profile],
                                 check=True, capture_output=True, text=True, cwd=REPO).stdout
            rows.append({"n": n, "profile": profile, **json.loads(out)})
    return rows


def installed_command() -> list[str]:
    """The command as a user (or a monitoring check) runs it: the installed console script when there is
    one beside this interpreter (/usr/bin/sslreconciler in the RPM), else ``python -m sslreconciler``."""
    script = Path(sys.executable).parent / "sslreconciler"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sslreconciler"]


def bench_startup(work: Path, rounds: int) -> dict:
    made = make_tree(work / "startup", 1)
    tree, desired = made.ssl_dir, made.desired
    module = [sys.executable, "-m", "sslreconciler"]
    cli = installed_command()
    subprocess.run(reconcile_argv(tree, desired, work / "state"), check=True, capture_output=True, cwd=REPO)
    sock = work / "startup.sock"
    daemon = subprocess.Popen([*module, "run", "--ssl-dir", str(tree), "--desired-state", str(desired),
                               "--state-dir", str(work / "dstate"), "--socket", str(sock)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if http_get(sock).get("status") == "ok":
                    break
            except OSError:
                pass
            time.sleep(0.05)
        shown = "sslreconciler" if len(cli) == 1 else "python -m sslreconciler"
        cases = {
            "python -I -c pass (the bare interpreter)": [sys.executable, "-I", "-c", "pass"],
            f"{shown} status --socket S (daemon answering)": [*cli, "status", "--socket", str(sock)],
            "python -m sslreconciler status --socket S (daemon answering)": [*module, "status", "--socket", str(sock)],
            "curl --unix-socket S http://localhost/health": ["curl", "-s", "--unix-socket", str(sock),
                                                             "http://localhost/health"],
            f"{shown} status (no daemon: UNKNOWN)": [*cli, "status", "--socket", str(work / "none.sock")],
            f"{shown} --help": [*cli, "--help"],
            "python -m sslreconciler reconcile (no-op, seed layout)": reconcile_argv(tree, desired, work / "state"),
        }
        if len(cli) > 1:
            del cases["python -m sslreconciler status --socket S (daemon answering)"]
        times: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(rounds):  # round robin: machine noise hits every command alike
            for label, argv in cases.items():
                t0 = time.perf_counter()
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
                times[label].append(time.perf_counter() - t0)
        status_split = floors.import_split([*module[1:], "status", "--socket", str(sock)])
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    def fresh_build() -> list[str]:
        shutil.rmtree(work / "split-state", ignore_errors=True)
        return ["reconcile", "--ssl-dir", str(fresh_copy(tree, work / "split")), "--desired-state", str(desired),
                "--state-dir", str(work / "split-state")]

    split = floors.oneshot_split(fresh_build)
    return {"rows": [{"label": label, "times": ts} for label, ts in times.items()], "status_imports": status_split,
            "bare_imports": floors.import_split(["-I", "-c", "pass"]), "oneshot_split": split}


def versions() -> str:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return f"{java}; {ossl}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs and sizes, to try the benchmark (about 4 minutes); not for the page")
    parser.add_argument("--swaps", type=int, help="web-pair swaps for the reaction latency (default 60, quick 15)")
    parser.add_argument("--idle", type=float, help="seconds the daemon is watched at rest (default 60, quick 10)")
    parser.add_argument("--sizes", help="authorities per one-shot tree (default 1,10,30,100,1000; quick 1,30,1000)")
    parser.add_argument("--runs", type=int, help="runs per one-shot comparison (default 5, quick 3)")
    parser.add_argument("--keytool-max", type=int, default=100, help="largest tree the keytool pipeline builds")
    parser.add_argument("--reference-n", type=int, default=10_000, help="certificates in the truststore comparison")
    parser.add_argument("--reference-runs", type=int, help="runs per truststore contestant (default 3, quick 2)")
    parser.add_argument("--shapes", help="truststore shapes (default cas,leaves; quick cas)")
    parser.add_argument("--unbuffered", action="store_true",
                        help="also time TrustBuilder --unbuffered + openssl rehash (a history row only)")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="the page to write (default docs/benchmarks.md; its figures go beside it as .json)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only redraw the page from saved results")
    args = parser.parse_args()
    quick = args.quick
    if args.render:
        results = json.loads(args.render.read_text())
    else:
        # The measured tree runs from bytecode, as an installed package does (this environment may say
        # PYTHONDONTWRITEBYTECODE, and then every process would compile every module again).
        compileall.compile_dir(REPO / "src", quiet=1)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="srbench-", dir="/tmp"))
        sizes = [int(x) for x in (args.sizes or ("1,30,1000" if quick else "1,10,30,100,1000")).split(",")]
        runs = args.runs or (3 if quick else 5)
        ref_runs = args.reference_runs or (2 if quick else 3)
        shapes = tuple((args.shapes or ("cas" if quick else "cas,leaves")).split(","))
        swaps = args.swaps or (15 if quick else 60)
        try:
            results = {
                "when": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
                "quick": quick,
                "machine": machine(),
                "versions": versions(),
                "load_before": os.getloadavg(),
                "swaps": swaps,
                "oneshot": bench_one_shot(work, sizes, args.keytool_max, runs),
                "noop_growth": bench_noop_growth(work, max(sizes), 5 if quick else 9),
                "inproc": bench_in_process(work, [n for n in (1, 1000) if n in sizes] or [1]),
                "daemon": bench_daemon(swaps, args.idle or (10.0 if quick else 60.0)),
                "reference": {
                    "n": args.reference_n,
                    "runs": ref_runs,
                    "rows": goal_truststore.compare(work / "reference", args.reference_n, shapes, ref_runs,
                                                    unbuffered=args.unbuffered, profile=True),
                },
                "startup": bench_startup(work, 7 if quick else 15),
                "ways": probes.ways(500 if quick else 2000),
                "load_after": os.getloadavg(),
            }
            results["duration_s"] = time.monotonic() - started
        finally:
            shutil.rmtree(work, ignore_errors=True)
        args.output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    text = page.render(results)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
