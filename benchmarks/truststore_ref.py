"""Issue 15's reference: a cold 10,000-certificate JKS truststore, `sslreconciler reconcile` vs one JVM.

Two shapes, as the issue names them:
  leaves  one self-signed CA and N leaf certificates it signed (N + 1 files);
  cas     N self-signed CA certificates (N files).
Each certificate is a PEM ``.crt`` file in ``<work>/ssl/authorities``; EC P-256 keys by default (fast to
make), ``--key rsa`` signs with one shared RSA-2048 key instead (RSA verification is cheaper than ECDSA's,
so the shape of the per-certificate cost differs).

Contestants, each cold (no state dir, no store, no hash links) in a fresh process, alternated, median of
``--runs``: wall time and peak RSS (ru_maxrss of the one child, measured by a wrapper process):
  sslreconciler  `python -m sslreconciler reconcile`, desired state: truststore only, sources = that dir
                 (hash links on, as by default: it also writes N subject-hash links; Java does not);
  java           benchmarks/java/TrustBuilder.java (CertificateFactory + KeyStore("JKS") + store), default
                 JVM flags. It parses and stores; it checks no signature, expiry or CA rule.
  java-unbuffered  (--java-unbuffered) the same fed a bare FileInputStream: a syscall per PEM byte.
After the timed runs both stores are read back and must hold the same entries.

`--profile` also runs one cold reconcile of each shape under cProfile and prints the top entries by
cumulative time. Importable: make_certs(), compare(), profile_reconcile(), render().
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parent.parent
JAVA_SOURCE = REPO / "benchmarks" / "java" / "TrustBuilder.java"
PASSWORD = "changeit"
SHAPES = ("leaves", "cas")
DESIRED = {
    "hostname": "bench.example.com",
    "pairs": [],
    "truststore": {"file": "authorities.jks", "sources": ["authorities"], "host_pair": None},
}

# Runs one command and reports its wall time and the peak RSS of that one child (RUSAGE_CHILDREN of a
# process that has no other children).
_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"s": wall, "peak_kib": usage.ru_maxrss, "user": usage.ru_utime, "sys": usage.ru_stime,
                  "rc": proc.returncode, "err": proc.stderr.decode(errors="replace")[-2000:]}))
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _keys(kind: str) -> Iterator[ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    if kind == "rsa":
        shared = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        while True:
            yield shared
    while True:
        yield ec.generate_private_key(ec.SECP256R1())


def make_certs(directory: Path, shape: str, n: int, key: str = "ec") -> int:
    """Write the shape's certificates into ``directory`` (created); returns how many files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(days=1), now + dt.timedelta(days=365)
    keys = _keys(key)
    ca_ext = x509.BasicConstraints(ca=True, path_length=None)
    ca_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    leaf_ext = x509.BasicConstraints(ca=False, path_length=None)

    def build(subject: str, issuer: str, public: object, signer: object, ca: bool) -> bytes:
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(_name(issuer))
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
        )
        if ca:
            builder = builder.add_extension(ca_ext, critical=True).add_extension(ca_usage, critical=True)
        else:
            builder = builder.add_extension(leaf_ext, critical=True).add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]

    if shape == "leaves":
        ca_key = next(keys)
        ca_cn = "ca.bench.example.com"
        (directory / f"{ca_cn}.crt").write_bytes(build(ca_cn, ca_cn, ca_key.public_key(), ca_key, True))
        for i in range(n):
            cn = f"leaf{i:05d}.bench.example.com"
            (directory / f"{cn}.crt").write_bytes(build(cn, ca_cn, next(keys).public_key(), ca_key, False))
        return n + 1
    if shape == "cas":
        for i in range(n):
            cn = f"ca{i:05d}.bench.example.com"
            k = next(keys)
            (directory / f"{cn}.crt").write_bytes(build(cn, cn, k.public_key(), k, True))
        return n
    raise ValueError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})")


def compile_java(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-d", str(out), str(JAVA_SOURCE)], check=True, timeout=300)
    return out


@dataclass
class Tree:
    root: Path  # holds ssl/, desired-state.json, state/
    files: int

    @property
    def ssl_dir(self) -> Path:
        return self.root / "ssl"

    @property
    def sources(self) -> Path:
        return self.ssl_dir / "authorities"

    @property
    def desired(self) -> Path:
        return self.root / "desired-state.json"


def make_tree(root: Path, shape: str, n: int, key: str = "ec") -> Tree:
    files = make_certs(root / "ssl" / "authorities", shape, n, key)
    (root / "desired-state.json").write_text(json.dumps(DESIRED))
    return Tree(root, files)


def make_cold(tree: Tree) -> None:
    """Undo what a run left: the store, the hash links, the state dir, Java's output.

    The certificates move into a new directory: an ext4 directory that once held the 10,000 hash links
    as well never shrinks, and making links in it again costs far more (symlink() 0.1 s -> 2.3 s in a
    10,000-certificate profile): every run starts from a directory like the first run's.
    """
    fresh = tree.sources.with_name("authorities.fresh")
    fresh.mkdir()
    for name in os.listdir(tree.sources):
        if name.endswith((".crt", ".pem")):
            os.rename(tree.sources / name, fresh / name)
    shutil.rmtree(tree.sources)
    fresh.rename(tree.sources)
    for leftover in (tree.ssl_dir / "authorities.jks", tree.root / "java.jks"):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(tree.root / "state", ignore_errors=True)


def reconcile_argv(tree: Tree) -> list[str]:
    return [sys.executable, "-m", "sslreconciler", "reconcile", "--ssl-dir", str(tree.ssl_dir),
            "--desired-state", str(tree.desired), "--state-dir", str(tree.root / "state")]


def java_argv(tree: Tree, classes: Path, unbuffered: bool = False) -> list[str]:
    out = tree.root / "java.jks"
    return ["java", "-cp", str(classes), "TrustBuilder", str(tree.sources), str(out), PASSWORD] + (
        ["--unbuffered"] if unbuffered else []
    )


def argv_of(who: str, tree: Tree, classes: Path) -> tuple[list[str], Path]:
    """The command line of a contestant and the store it writes."""
    if who == "sslreconciler":
        return reconcile_argv(tree), tree.ssl_dir / "authorities.jks"
    return java_argv(tree, classes, unbuffered=who == "java-unbuffered"), tree.root / "java.jks"


def same_entries(ours: Path, java: Path) -> None:
    """Both stores hold the same aliases and certificates (read by pyjks, via stores.jks.read_jks)."""
    sys.path.insert(0, str(REPO / "src"))
    from sslreconciler.stores.jks import read_jks

    a, b = read_jks(ours.read_bytes(), PASSWORD), read_jks(java.read_bytes(), PASSWORD)
    assert a.trusted == b.trusted, "sslreconciler and java stored different entries"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSLRECONCILER_")}
    env["PYTHONPATH"] = str(REPO / "src")
    return env


def measure(argv: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], check=True, capture_output=True, text=True,
                         env=_env(), cwd=REPO, timeout=1800).stdout
    result: dict[str, Any] = json.loads(out)
    if result["rc"] != 0:
        raise RuntimeError(f"{argv[:4]}... exited {result['rc']}: {result['err']}")
    return result


def entry_count(store: Path) -> int:
    """The entry count in a JKS header (magic, version, count)."""
    head = store.read_bytes()[:12]
    assert head[:4] == b"\xfe\xed\xfe\xed", f"{store}: not JKS"
    return int.from_bytes(head[8:12], "big")


def compare(work: Path, n: int = 10_000, shapes: tuple[str, ...] = SHAPES, runs: int = 3, key: str = "ec",
            unbuffered: bool = False, log: bool = True) -> list[dict[str, Any]]:
    """One row per shape: medians (and all runs) of wall seconds and peak MiB for each contestant."""
    classes = compile_java(work / "java-classes")
    contestants = ["sslreconciler", "java"] + (["java-unbuffered"] if unbuffered else [])
    rows = []
    for shape in shapes:
        t0 = time.perf_counter()
        tree = make_tree(work / shape, shape, n, key)
        if log:
            print(f"# {shape}: {tree.files} certificates made in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        results: dict[str, list[dict[str, Any]]] = {who: [] for who in contestants}
        for i in range(runs):
            for who in contestants[i % len(contestants) :] + contestants[: i % len(contestants)]:  # rotated
                make_cold(tree)
                argv, store = argv_of(who, tree, classes)
                result = measure(argv)
                assert entry_count(store) == tree.files, f"{who}: {entry_count(store)} entries, not {tree.files}"
                results[who].append(result)
                if log:
                    print(f"#   {who:15} run {i + 1}: {result['s']:.2f} s (cpu {result['user']:.2f} user + "
                          f"{result['sys']:.2f} sys), {result['peak_kib'] / 1024:.0f} MiB", file=sys.stderr)
        for who in ("sslreconciler", "java"):  # once more, untimed, to check both wrote the same store
            argv, _ = argv_of(who, tree, classes)
            measure(argv)
        same_entries(tree.ssl_dir / "authorities.jks", tree.root / "java.jks")
        make_cold(tree)
        row: dict[str, Any] = {"shape": shape, "files": tree.files}
        for who, rs in results.items():
            row[who] = {"s": statistics.median(r["s"] for r in rs), "peak_mib": statistics.median(
                r["peak_kib"] for r in rs) / 1024, "runs_s": [round(r["s"], 2) for r in rs],
                "cpu_s": statistics.median(r["user"] + r["sys"] for r in rs)}
        rows.append(row)
        shutil.rmtree(work / shape, ignore_errors=True)
    return rows


def render(rows: list[dict[str, Any]], runs: int) -> str:
    """A markdown table: wall time (runs, CPU user+sys) and peak RSS per contestant, and the wall ratio."""
    contestants = [k for k in rows[0] if k not in ("shape", "files")] if rows else []
    head = ["shape", "files"] + [f"{who} (median of {runs})" for who in contestants]
    head += ["java / sslreconciler (>= 3 wanted)"] + [f"peak RSS {who}" for who in contestants]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["shape"], f"{r['files']:,}"]
        cells += [f"{r[who]['s']:.2f} s {r[who]['runs_s']}, cpu {r[who]['cpu_s']:.2f} s" for who in contestants]
        cells += [f"{r['java']['s'] / r['sslreconciler']['s']:.2f}"]
        cells += [f"{r[who]['peak_mib']:.0f} MiB" for who in contestants]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_reconcile(
    work: Path, shape: str, n: int = 10_000, key: str = "ec", top: int = 15, keep: Path | None = None
) -> str:
    """One cold reconcile under cProfile (``python -m cProfile -m sslreconciler ...``).

    The top ``top`` entries by cumulative time, then by own time; ``keep``: also copy the .prof there.
    """
    import pstats
    from io import StringIO

    tree = make_tree(work / f"profile-{shape}", shape, n, key)
    out = work / f"profile-{shape}.prof"
    argv = reconcile_argv(tree)
    subprocess.run([argv[0], "-m", "cProfile", "-o", str(out), *argv[1:]], check=True, env=_env(), cwd=REPO,
                   stdout=subprocess.DEVNULL, timeout=1800)
    text = StringIO()
    stats = pstats.Stats(str(out), stream=text).strip_dirs()
    # The first entries by cumulative time are the interpreter's and main()'s wrappers: skip those.
    stats.sort_stats("cumulative").print_stats(r"^(?!<|.*runpy|.*__main__|\{built-in method builtins.exec)", top)
    stats.sort_stats("tottime").print_stats(top)
    if keep is not None:
        shutil.copy(out, keep)
    shutil.rmtree(work / f"profile-{shape}", ignore_errors=True)
    return text.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="certificates per shape (default 10,000)")
    parser.add_argument("--shape", choices=SHAPES, action="append", help="only this shape (repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="runs per contestant, alternated (default 3)")
    parser.add_argument("--key", choices=("ec", "rsa"), default="ec",
                        help="ec: a P-256 key per certificate (default); rsa: one shared RSA-2048 key")
    parser.add_argument("--java-unbuffered", action="store_true",
                        help="also time TrustBuilder --unbuffered (a bare FileInputStream, as a naive program has it)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one cold reconcile of each shape")
    parser.add_argument("--keep-profiles", type=Path, help="copy each .prof file into this directory")
    parser.add_argument("--no-compare", action="store_true", help="only the profile")
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    args = parser.parse_args(argv)
    shapes = tuple(args.shape or SHAPES)
    with tempfile.TemporaryDirectory(prefix="truststore-ref-", dir=args.work) as tmp:
        work = Path(tmp)
        if not args.no_compare:
            rows = compare(work, args.n, shapes, args.runs, args.key, args.java_unbuffered)
            print(render(rows, args.runs))
            print(json.dumps(rows))
        if args.profile:
            for shape in shapes:
                print(f"\n## cProfile, one cold reconcile, shape {shape}, n={args.n}, key {args.key}\n")
                keep = args.keep_profiles / f"reconcile-{shape}.prof" if args.keep_profiles else None
                print(profile_reconcile(work, shape, args.n, args.key, keep=keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
